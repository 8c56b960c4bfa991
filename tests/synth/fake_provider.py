"""A local HTTP server that speaks Anthropic's and OpenAI's wire formats, for tests and benchmarks.

It is the only fake: our code talks to it through the real SDKs (ANTHROPIC_BASE_URL=fake.url,
OPENAI_BASE_URL=fake.url + "/v1"). Replies are deterministic: `expected_text(messages)` says
what any model answers, so tests can compare final replies across runs.

Faults, two ways:
- a FIFO script, consumed by the next model calls (either API): fake.push("rate_limit:0.2", "overloaded",
  "server_error:503", "hang", "reset", "truncated", "refusal", "max_tokens", "ok", "rate_limit_date:1")
- markers in the last user message, applied every time: "[[refuse]]", "[[long]]", and for batches
  "[[batch:errored]]", "[[batch:expire_once]]", "[[batch:error_once]]".

Run alone (benchmarks): `python tests/synth/fake_provider.py --latency 0.1` prints "PORT <n>" and serves until killed.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import hashlib
import json
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("ok", "rate_limit", "rate_limit_date", "overloaded", "server_error", "hang", "reset", "truncated",
          "refusal", "max_tokens", "unauthorized")


def digest(messages: list[dict]) -> str:
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def expected_text(messages: list[dict]) -> str:
    """What every fake model answers to these (logical) messages, system prompt first."""
    return f"reply {digest(messages)}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default 5 resets connections when 32 clients connect at once

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)


class FakeProvider:
    def __init__(self, *, latency: float = 0.0, batch_delay: float = 0.2, hang_s: float = 30.0, port: int = 0):
        self.latency, self.batch_delay, self.hang_s = latency, batch_delay, hang_s
        self.log: list[dict] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._expired_once: set[str] = set()
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}  # id -> record, both APIs
        self._server = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def push(self, *faults: str) -> None:
        for fault in faults:
            if fault.split(":")[0] not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
        with self._lock:
            self._script.extend(faults)

    def calls(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self.log if path is None or e["path"] == path]

    def model_calls(self) -> list[dict]:
        return [e for e in self.calls() if e["path"] in ("/v1/messages", "/v1/chat/completions")]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeProvider":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model replies, shared by the sync endpoints and the batch results
    def next_fault(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else "ok"

    def wait(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def answer(self, api: str, body: dict, fault: str = "ok") -> dict:
        messages = _logical_messages(api, body)
        last = messages[-1]["content"] if messages else ""
        text = expected_text(messages)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 256
        stop = "stop"
        if fault == "refusal" or "[[refuse]]" in last:
            stop, text = "refusal", ""
        elif fault == "max_tokens" or "[[long]]" in last:
            stop, text = "length", text[: max(1, max_tokens // 2)]
        n_in = sum(len(m["content"]) for m in messages) // 4 + 3 * len(messages)
        n_out = min(max_tokens, len(text.split()) + 2)
        if api == "anthropic":
            reason = {"stop": "end_turn", "refusal": "refusal", "length": "max_tokens"}[stop]
            return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
                    "model": body.get("model"), "content": [{"type": "text", "text": text}] if text else [],
                    "stop_reason": reason, "stop_sequence": None,
                    "usage": {"input_tokens": n_in, "output_tokens": n_out}}
        message = {"role": "assistant", "content": text or None, "refusal": None}
        if stop == "refusal":
            message["refusal"] = "I can't help with that."
        return {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "length" if stop == "length" else "stop"}],
                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}}


def _logical_messages(api: str, body: dict) -> list[dict]:
    messages = []
    if api == "anthropic" and body.get("system"):
        system = body["system"]
        if isinstance(system, list):
            system = "".join(block.get("text", "") for block in system)
        messages.append({"role": "system", "content": system})
    for m in body.get("messages", []):
        content = m["content"]
        if isinstance(content, list):
            content = "".join(block.get("text", "") for block in content)
        messages.append({"role": m["role"], "content": content})
    return messages


def _error_body(api: str, status: int, kind: str, message: str) -> dict:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _make_handler(fake: FakeProvider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def setup(self) -> None:
            super().setup()
            # headers and body go out in one segment: no Nagle/delayed-ACK stall of ~40 ms per reply
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            started = time.time()
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            path = self.path.split("?")[0]
            entry = {"t_start": started, "t_end": None, "method": method, "path": path, "outcome": "in_progress",
                     "api_key": self.headers.get("x-api-key") or
                     (self.headers.get("authorization") or "").removeprefix("Bearer ")}
            with fake._lock:
                fake.log.append(entry)  # logged on arrival, so a hung or abandoned call still counts
            try:
                outcome = self._route(method, path, raw, entry)
            except (BrokenPipeError, ConnectionResetError):
                outcome = "client_gone"
            entry.update(t_end=time.time(), outcome=outcome)

        # -- responses
        def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None,
                  length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body) if length is None else length))
            self.send_header("request-id", "req_fake")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self._headers_buffer.append(b"\r\n")  # end_headers() without its separate flush
            self.wfile.write(b"".join(self._headers_buffer) + body)
            self._headers_buffer = []
            self.wfile.flush()

        def _json(self, status: int, obj: object, headers: dict | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers=headers)

        def _reset(self) -> None:
            # SO_LINGER 0 makes close() send RST: the client sees a reset, not a clean EOF
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _route(self, method: str, path: str, raw: bytes, entry: dict) -> str:
            if method == "POST" and path in ("/v1/messages", "/v1/chat/completions"):
                api = "anthropic" if path == "/v1/messages" else "openai"
                body = json.loads(raw)
                entry.update(api=api, model=body.get("model"), body=body, digest=digest(_logical_messages(api, body)))
                return self._model_call(api, body)
            if path == "/_stats":  # for a benchmark that runs this server in another process
                calls = fake.model_calls()
                self._json(200, {"model_calls": len(calls), "starts": [c["t_start"] for c in calls]})
                return "stats"
            if path.startswith("/v1/messages/batches"):
                return self._anthropic_batches(method, path, raw)
            if path.startswith("/v1/files"):
                return self._files(method, path, raw)
            if path.startswith("/v1/batches"):
                return self._openai_batches(method, path, raw)
            self._json(404, _error_body("openai", 404, "not_found_error", f"no route {method} {path}"))
            return "404"

        def _model_call(self, api: str, body: dict) -> str:
            fault = fake.next_fault()
            name, _, arg = fault.partition(":")
            if fake.latency:
                fake.wait(fake.latency)
            if name == "rate_limit":
                self._json(429, _error_body(api, 429, "rate_limit_error", "Rate limited"),
                           headers={"retry-after": arg or "0.1"})
            elif name == "rate_limit_date":
                when = formatdate(time.time() + float(arg or 1), usegmt=True)
                self._json(429, _error_body(api, 429, "rate_limit_error", "Rate limited"),
                           headers={"retry-after": when})
            elif name == "overloaded":
                self._json(529, _error_body(api, 529, "overloaded_error", "Overloaded"))
            elif name == "server_error":
                status = int(arg or 500)
                self._json(status, _error_body(api, status, "api_error", "Internal server error"))
            elif name == "unauthorized":
                self._json(401, _error_body(api, 401, "authentication_error", "invalid x-api-key"))
            elif name == "hang":
                fake.wait(fake.hang_s)
                self._reset()
            elif name == "reset":
                self._reset()
            elif name == "truncated":
                data = json.dumps(fake.answer(api, body)).encode()
                cut = data[: len(data) // 2]
                self._send(200, cut)
            else:
                self._json(200, fake.answer(api, body, name))
            return fault

        # -- Anthropic Message Batches
        def _anthropic_batch_view(self, rec: dict) -> dict:
            _settle(fake, rec)
            ended = rec["status"] == "ended"
            counts = {"processing": 0 if ended else len(rec["requests"]), "succeeded": 0, "errored": 0,
                      "canceled": 0, "expired": 0}
            if ended:
                for result in rec["results"].values():
                    counts[result["type"]] += 1
            return {"id": rec["id"], "type": "message_batch", "processing_status": rec["status"],
                    "request_counts": counts, "created_at": _iso(rec["created"]),
                    "expires_at": _iso(rec["created"] + 86400), "ended_at": _iso(rec["ends"]) if ended else None,
                    "cancel_initiated_at": _iso(rec["cancelled"]) if rec.get("cancelled") else None,
                    "archived_at": None,
                    "results_url": f"{fake.url}/v1/messages/batches/{rec['id']}/results" if ended else None}

        def _anthropic_batches(self, method: str, path: str, raw: bytes) -> str:
            parts = path.strip("/").split("/")  # v1 messages batches [id] [results|cancel]
            if method == "POST" and len(parts) == 3:
                body = json.loads(raw)
                now = time.time()
                rec = {"id": "msgbatch_" + uuid.uuid4().hex[:24], "api": "anthropic", "created": now,
                       "ends": now + fake.batch_delay, "status": "in_progress",
                       "requests": [(r["custom_id"], r["params"]) for r in body["requests"]]}
                with fake._lock:
                    fake.batches[rec["id"]] = rec
                self._json(200, self._anthropic_batch_view(rec))
                return "batch_created"
            if method == "GET" and len(parts) == 3:
                with fake._lock:
                    recs = [r for r in fake.batches.values() if r["api"] == "anthropic"]
                data = [self._anthropic_batch_view(r) for r in sorted(recs, key=lambda r: -r["created"])]
                self._json(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})
                return "batch_list"
            rec = fake.batches.get(parts[3])
            if rec is None:
                self._json(404, _error_body("anthropic", 404, "not_found_error", "no such batch"))
                return "404"
            if method == "POST" and parts[-1] == "cancel":
                rec["cancelled"] = time.time()
                self._json(200, self._anthropic_batch_view(rec))
                return "batch_cancel"
            if parts[-1] == "results":
                _settle(fake, rec)
                lines = [json.dumps({"custom_id": cid, "result": res}) for cid, res in rec["results"].items()]
                self._send(200, ("\n".join(lines) + "\n").encode(), ctype="application/binary")
                return "batch_results"
            self._json(200, self._anthropic_batch_view(rec))
            return "batch_retrieve"

        # -- OpenAI files + batches
        def _files(self, method: str, path: str, raw: bytes) -> str:
            parts = path.strip("/").split("/")  # v1 files [id] [content]
            if method == "POST" and len(parts) == 2:
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + raw)
                fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                content = fields["file"].get_payload(decode=True)
                file = {"id": "file-" + uuid.uuid4().hex[:24], "object": "file", "bytes": len(content),
                        "created_at": int(time.time()), "filename": fields["file"].get_filename() or "upload",
                        "purpose": fields["purpose"].get_content().strip(), "status": "processed"}
                with fake._lock:
                    fake.files[file["id"]] = {**file, "content": content}
                self._json(200, file)
                return "file_created"
            file = fake.files.get(parts[2])
            if file is None:
                self._json(404, _error_body("openai", 404, "invalid_request_error", "no such file"))
                return "404"
            if parts[-1] == "content":
                self._send(200, file["content"], ctype="application/octet-stream")
                return "file_content"
            self._json(200, {k: v for k, v in file.items() if k != "content"})
            return "file_retrieve"

        def _openai_batch_view(self, rec: dict) -> dict:
            _settle(fake, rec)
            ended = rec["status"] == "ended"
            failed = sum(1 for r in rec.get("results", {}).values() if r["type"] != "succeeded")
            status = "in_progress"
            if ended:
                status = "cancelled" if rec.get("cancelled") else ("expired" if rec.get("any_expired") else "completed")
            elif rec.get("cancelled"):
                status = "cancelling"
            return {"id": rec["id"], "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                    "input_file_id": rec["input_file_id"], "completion_window": "24h", "status": status,
                    "output_file_id": rec.get("output_file_id"), "error_file_id": rec.get("error_file_id"),
                    "created_at": int(rec["created"]), "metadata": rec.get("metadata"),
                    "request_counts": {"total": len(rec["requests"]), "completed": len(rec["requests"]) - failed
                                       if ended else 0, "failed": failed}}

        def _openai_batches(self, method: str, path: str, raw: bytes) -> str:
            parts = path.strip("/").split("/")  # v1 batches [id] [cancel]
            if method == "POST" and len(parts) == 2:
                body = json.loads(raw)
                lines = fake.files[body["input_file_id"]]["content"].decode().splitlines()
                items = [json.loads(line) for line in lines if line.strip()]
                now = time.time()
                rec = {"id": "batch_" + uuid.uuid4().hex[:24], "api": "openai", "created": now,
                       "ends": now + fake.batch_delay, "status": "in_progress", "metadata": body.get("metadata"),
                       "input_file_id": body["input_file_id"],
                       "requests": [(it["custom_id"], it["body"]) for it in items]}
                with fake._lock:
                    fake.batches[rec["id"]] = rec
                self._json(200, self._openai_batch_view(rec))
                return "batch_created"
            if method == "GET" and len(parts) == 2:
                with fake._lock:
                    recs = [r for r in fake.batches.values() if r["api"] == "openai"]
                data = [self._openai_batch_view(r) for r in sorted(recs, key=lambda r: -r["created"])]
                self._json(200, {"object": "list", "data": data, "has_more": False,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})
                return "batch_list"
            rec = fake.batches.get(parts[2])
            if rec is None:
                self._json(404, _error_body("openai", 404, "invalid_request_error", "no such batch"))
                return "404"
            if method == "POST" and parts[-1] == "cancel":
                rec["cancelled"] = time.time()
            self._json(200, self._openai_batch_view(rec))
            return "batch_retrieve"

    return Handler


def _settle(fake: FakeProvider, rec: dict) -> None:
    """Once a batch's time is up (or it was cancelled), fix every request's result, once."""
    with fake._lock:
        if rec["status"] == "ended" or (time.time() < rec["ends"] and not rec.get("cancelled")):
            return
        results = {}
        for cid, params in rec["requests"]:
            last = (params.get("messages") or [{}])[-1].get("content", "")
            last = last if isinstance(last, str) else json.dumps(last)
            if rec.get("cancelled"):
                results[cid] = {"type": "canceled"}
            elif "[[batch:errored]]" in last or ("[[batch:error_once]]" in last and
                                                 ("err", cid) not in fake._expired_once):
                fake._expired_once.add(("err", cid))
                results[cid] = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "api_error", "message": "Internal server error"}}}
            elif "[[batch:expire_once]]" in last and cid not in fake._expired_once:
                fake._expired_once.add(cid)
                results[cid] = {"type": "expired"}
            else:
                results[cid] = {"type": "succeeded", "message": fake.answer(rec["api"], params)}
        rec["results"], rec["status"] = results, "ended"
        if rec["api"] == "openai":
            _write_openai_outputs(fake, rec)


def _write_openai_outputs(fake: FakeProvider, rec: dict) -> None:
    out, err = [], []
    rec["any_expired"] = any(r["type"] == "expired" for r in rec["results"].values())
    for cid, res in rec["results"].items():
        line = {"id": "batch_req_" + uuid.uuid4().hex[:16], "custom_id": cid}
        if res["type"] == "succeeded":
            out.append({**line, "response": {"status_code": 200, "request_id": "req_fake", "body": res["message"]},
                        "error": None})
        elif res["type"] == "errored":
            err.append({**line, "response": {"status_code": 500, "request_id": "req_fake",
                                             "body": _error_body("openai", 500, "server_error", "Internal error")},
                        "error": None})
        else:
            code = "batch_expired" if res["type"] == "expired" else "batch_cancelled"
            err.append({**line, "response": None, "error": {"code": code, "message": "not processed"}})
    for kind, lines in (("output_file_id", out), ("error_file_id", err)):
        if lines:
            fid = "file-" + uuid.uuid4().hex[:24]
            content = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
            fake.files[fid] = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": f"{kind}.jsonl", "purpose": "batch_output", "status": "processed",
                               "content": content}
            rec[kind] = fid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--batch-delay", type=float, default=0.2)
    args = parser.parse_args()
    fake = FakeProvider(latency=args.latency, batch_delay=args.batch_delay, port=args.port)
    print(f"PORT {fake.url.rsplit(':', 1)[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.close()


if __name__ == "__main__":
    sys.exit(main())
