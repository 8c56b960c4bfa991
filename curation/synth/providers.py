"""Remote teachers through the official SDKs: Anthropic Messages, OpenAI Chat Completions, OpenAI-compatible servers.

The SDKs' own retries are off (max_retries=0): the runner retries, so the ledger sees every attempt.
Keys come from the environment only; base URLs follow ANTHROPIC_BASE_URL / OPENAI_BASE_URL as the SDKs do.
Every SDK exception becomes a Reply with a named reason; see `faults.classify`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse, urlsplit, urlunsplit

from assay.curation.synth.contract import FREE, MissingKeyError, Reply, Request, failed
from assay.curation.synth.faults import classify, status_reason
from assay.curation.synth.prices import PriceTable
from assay.curation.synth.registry import PROVIDERS
from assay.errors import AssayError
from assay.redact import mask_url, mask_urls, mask_urls_in_logs

# models that reject sampling parameters (Anthropic: Opus 4.7 and later, generation 5+; OpenAI: reasoning models)
_ANTHROPIC_NO_TEMPERATURE = re.compile(r"^claude-(opus-4-[7-9]|opus-4-\d\d|[a-z]+-[5-9])")
_OPENAI_NO_TEMPERATURE = re.compile(r"^(o\d|gpt-5)")


def _require_key(provider: str, spec: str) -> str:
    variable = PROVIDERS[provider].key_env
    key = os.environ.get(variable, "").strip()
    if not key:
        raise MissingKeyError(f"{spec} needs an API key: set the environment variable {variable}.")
    return key


class _RemoteTeacher:
    is_remote, batch_size = True, 1
    provider = ""

    def __init__(self, model: str, *, prices: PriceTable | None = None, timeout_s: float = 120.0,
                 concurrency: int = 8):
        self.model, self.spec = model, f"{self.provider}:{model}"
        self.price = (prices or PriceTable()).lookup(self.provider, model)
        self.timeout_s, self.concurrency = timeout_s, concurrency

    async def generate(self, requests: list[Request]) -> list[Reply]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: Request) -> Reply:
            async with gate:
                return await self.call(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def call(self, request: Request) -> Reply:
        try:
            response = await self._create(request)
            return self._reply(response)
        except Exception as exc:  # noqa: BLE001 - every fault becomes a named Reply
            reason, retryable, retry_after = classify(exc)
            return failed(self.spec, reason, retryable=retryable, retry_after=retry_after)

    def _priced(self, reply: Reply, batch: bool = False) -> Reply:
        if self.price is None:
            reply.cost_known = False
        else:
            reply.cost_usd = self.price.cost(reply.usage["input_tokens"], reply.usage["output_tokens"], batch=batch)
        return reply

    async def aclose(self) -> None:
        await self.client.close()


class AnthropicTeacher(_RemoteTeacher):
    provider = "anthropic"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        import anthropic

        self.client = anthropic.AsyncAnthropic(api_key=_require_key(self.provider, self.spec),
                                               max_retries=0, timeout=self.timeout_s)

    def params(self, request: Request) -> dict:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        params: dict[str, Any] = {
            "model": self.model, "max_tokens": request.max_tokens,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages
                         if m["role"] != "system"]}
        if system:
            params["system"] = system
        # the SDK dropped `temperature` from its signature; the API takes it on models that still sample
        if not _ANTHROPIC_NO_TEMPERATURE.match(self.model):
            params["temperature"] = request.temperature
        return params

    async def _create(self, request: Request) -> Any:
        params = self.params(request)
        temperature = params.pop("temperature", None)
        extra = {"temperature": temperature} if temperature is not None else None
        return await self.client.messages.create(**params, extra_body=extra)

    def _reply(self, message: Any, batch: bool = False) -> Reply:
        try:
            text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
            usage = {"input_tokens": int(message.usage.input_tokens), "output_tokens": int(message.usage.output_tokens)}
            stop = message.stop_reason
        except (AttributeError, TypeError, ValueError):
            return failed(self.spec, "malformed_body", retryable=True)
        reply = Reply(text=text, finish_reason="stop", usage=usage, cost_usd=0.0, cached=False, error=None,
                      teacher=self.spec)
        if stop == "refusal":
            reply.finish_reason, reply.error = "refusal", "refusal"
        elif stop == "max_tokens":
            reply.finish_reason, reply.error = "length", "max_tokens"
        elif stop == "model_context_window_exceeded":
            reply.finish_reason, reply.error = "length", "context_window_exceeded"
        elif stop not in ("end_turn", "stop_sequence"):
            reply.finish_reason, reply.error = "error", f"unexpected_stop:{stop}"
        return self._priced(reply, batch)

    # -- Message Batches API
    async def submit_batch(self, items: list[tuple[str, Request]], submission_id: str) -> str:
        batch = await self.client.messages.batches.create(
            requests=[{"custom_id": cid, "params": self.params(r)} for cid, r in items])
        return batch.id

    async def batch_status(self, batch_id: str) -> str:
        batch = await self.client.messages.batches.retrieve(batch_id)
        return "ended" if batch.processing_status == "ended" else "open"

    async def batch_results(self, batch_id: str) -> dict[str, Reply]:
        results: dict[str, Reply] = {}
        async for line in await self.client.messages.batches.results(batch_id):
            kind = line.result.type
            if kind == "succeeded":
                results[line.custom_id] = self._reply(line.result.message, batch=True)
            elif kind == "errored":
                error_type = getattr(getattr(line.result.error, "error", None), "type", "api_error")
                transient = error_type in ("api_error", "overloaded_error", "rate_limit_error")
                results[line.custom_id] = failed(self.spec, f"batch_errored:{error_type}", retryable=transient)
            else:  # expired, canceled: never processed, so resubmitting costs nothing twice
                results[line.custom_id] = failed(self.spec, f"batch_{kind}", retryable=True)
        return results

    async def find_batch(self, submission_id: str, created_after: float, n: int, known: set[str]) -> str | None:
        """A batch created by a submission whose id we never stored (killed mid-create): same size, same moment."""
        async for batch in self.client.messages.batches.list(limit=100):
            created = batch.created_at.timestamp()
            if created < created_after - 60:
                break
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if batch.id not in known and total == n and created >= created_after - 5:
                return batch.id
        return None


class OpenAITeacher(_RemoteTeacher):
    provider = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.client = self._client(base_url)

    def _client(self, base_url: str | None) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key=_require_key(self.provider, self.spec), base_url=base_url,
                                  max_retries=0, timeout=self.timeout_s)

    def params(self, request: Request) -> dict:
        params: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in request.messages],
                                  "max_completion_tokens": request.max_tokens}
        if not _OPENAI_NO_TEMPERATURE.match(self.model):
            params["temperature"] = request.temperature
        return params

    async def _create(self, request: Request) -> Any:
        return await self.client.chat.completions.create(**self.params(request))

    def _reply(self, completion: Any, batch: bool = False) -> Reply:
        try:
            choice = completion.choices[0]
            usage = {"input_tokens": int(completion.usage.prompt_tokens),
                     "output_tokens": int(completion.usage.completion_tokens)}
            finish, message = choice.finish_reason, choice.message
            text, refusal = message.content, getattr(message, "refusal", None)
        except (AttributeError, IndexError, TypeError, ValueError):
            return failed(self.spec, "malformed_body", retryable=True)
        reply = Reply(text=text or "", finish_reason="stop", usage=usage, cost_usd=0.0, cached=False, error=None,
                      teacher=self.spec)
        if refusal:
            reply.finish_reason, reply.error, reply.text = "refusal", "refusal", text
        elif finish == "content_filter":
            reply.finish_reason, reply.error = "refusal", "content_filter"
        elif finish == "length":
            reply.finish_reason, reply.error = "length", "max_tokens"
        elif finish != "stop":
            reply.finish_reason, reply.error = "error", f"unexpected_stop:{finish}"
        return self._priced(reply, batch)

    # -- Batch API: upload a JSONL file, create a batch over it, read the output and error files
    async def submit_batch(self, items: list[tuple[str, Request]], submission_id: str) -> str:
        lines = [json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                             "body": self.params(r)}, ensure_ascii=False) for cid, r in items]
        upload = await self.client.files.create(file=(f"assay-{submission_id}.jsonl",
                                                      ("\n".join(lines) + "\n").encode(), "application/jsonl"),
                                                purpose="batch")
        batch = await self.client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                 completion_window="24h", metadata={"assay_submission": submission_id})
        return batch.id

    async def batch_status(self, batch_id: str) -> str:
        batch = await self.client.batches.retrieve(batch_id)
        if batch.status in ("completed", "expired", "cancelled"):
            return "ended"
        return "failed" if batch.status == "failed" else "open"

    async def batch_results(self, batch_id: str) -> dict[str, Reply]:
        batch = await self.client.batches.retrieve(batch_id)
        results: dict[str, Reply] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for raw in content.text.splitlines():
                if raw.strip():
                    cid, reply = self._batch_line(json.loads(raw))
                    results[cid] = reply
        return results

    def _batch_line(self, line: dict) -> tuple[str, Reply]:
        from openai.types.chat import ChatCompletion

        response, error = line.get("response") or {}, line.get("error") or {}
        status = response.get("status_code")
        if status == 200:
            return line["custom_id"], self._reply(ChatCompletion.construct(**response["body"]), batch=True)
        if error.get("code") in ("batch_expired", "batch_cancelled"):
            return line["custom_id"], failed(self.spec, error["code"], retryable=True)
        reason = status_reason(status) if status else f"batch_errored:{error.get('code', 'unknown')}"
        return line["custom_id"], failed(self.spec, reason, retryable=status in (408, 409, 429) or (status or 0) >= 500)

    async def find_batch(self, submission_id: str, created_after: float, n: int, known: set[str]) -> str | None:
        async for batch in self.client.batches.list(limit=100):
            if batch.created_at < created_after - 60:
                break
            if (batch.metadata or {}).get("assay_submission") == submission_id:
                return batch.id
        return None


class OpenAICompatibleTeacher(OpenAITeacher):
    """`openai-compatible:<model>@<base_url>`: vLLM, llama.cpp, Ollama...; key from OPENAI_COMPATIBLE_API_KEY or none.

    The cache knows the teacher by provider and model name, not by URL: moving a server keeps its cache;
    serving a different model under the same name needs a different name.
    """

    provider = "openai-compatible"

    def __init__(self, model: str, **options: Any):
        name, sep, base_url = model.partition("@")  # a URL may hold "@" (user:password@host), a name does not
        if not sep or not name or urlparse(base_url).scheme not in ("http", "https"):
            raise AssayError(f"openai-compatible teacher needs '<model>@<base_url>', "
                             f"e.g. openai-compatible:qwen2.5@http://localhost:8000/v1; got {mask_urls(model)!r}")
        super().__init__(name, base_url=base_url, **options)
        # the spec is written to manifests, ledger rows and tables: credentials in the URL are masked there
        self.base_url, self.spec = base_url, f"{self.provider}:{name}@{mask_url(base_url)}"
        self.is_remote = (urlparse(base_url).hostname or "") not in ("localhost", "127.0.0.1", "::1")
        if self.price is None and not self.is_remote:
            self.price = FREE  # a server on this machine costs nothing per token

    def _client(self, base_url: str | None) -> Any:
        import openai

        # many local servers need no key, but the SDK insists on one: send a placeholder then
        key = os.environ.get(PROVIDERS[self.provider].key_env, "").strip() or "no-key"
        url = urlsplit(base_url or "")
        headers = {}
        if url.username is not None or url.password is not None:
            # user:password@ travels as a Basic header (as HTTP clients do), so request URLs never carry it
            pair = f"{unquote(url.username or '')}:{unquote(url.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if query:
            mask_urls_in_logs("httpx", "httpx2")  # the query goes on every request URL, which the client logs
        plain = urlunsplit((url.scheme, url.netloc.rpartition("@")[2], url.path, "", ""))
        return openai.AsyncOpenAI(api_key=key, base_url=plain, default_headers=headers or None,
                                  default_query=query or None, max_retries=0, timeout=self.timeout_s)

    def params(self, request: Request) -> dict:
        # servers such as llama.cpp and older vLLM know max_tokens, not max_completion_tokens
        return {"model": self.model, "messages": [dict(m) for m in request.messages],
                "max_tokens": request.max_tokens, "temperature": request.temperature}
