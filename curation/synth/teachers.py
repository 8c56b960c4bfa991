"""In-process teachers: the rule baselines and the local model (remote ones are in providers.py).

Which spec builds which teacher is registered in registry.py. Per-request faults never raise:
they come back as a Reply with `error` set to a named reason.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any, Callable

from assay.curation.synth.contract import FREE, Reply, Request
from assay.curation.synth.prices import PriceTable
from assay.errors import NotFoundError

# -- rule baselines

_NOTE = re.compile(r"<note>(.*?)</note>", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.U)
STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now
of off on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves""".split())


def note_text(request: Request) -> str:
    """The text a rule works on: the <note>...</note> block of the last user message, else all of it."""
    user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
    found = _NOTE.search(user)
    return (found.group(1) if found else user).strip()


def lead(text: str, min_chars: int = 80) -> str:
    """The first sentence, and the second too when the first is short."""
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    if not sentences:
        return ""
    return sentences[0] if len(sentences[0]) >= min_chars or len(sentences) == 1 else " ".join(sentences[:2])


def keywords(text: str, k: int = 5) -> str:
    """The k most frequent content words, ties broken by first appearance."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = Counter(w for w in words if len(w) >= 3 and w not in STOPWORDS)
    order = {w: i for i, w in reversed(list(enumerate(words)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], order[w]))
    return ", ".join(ranked[:k])


RULES: dict[str, Callable[[str], str]] = {"lead": lead, "keywords": keywords}



class RuleTeacher:
    provider, is_remote, price, batch_size = "rule", False, FREE, 256

    def __init__(self, name: str, rule: Callable[[str], str]):
        self.model, self.spec, self._rule = name, f"rule:{name}", rule

    async def generate(self, requests: list[Request]) -> list[Reply]:
        replies = []
        for request in requests:
            text = self._rule(note_text(request))
            reply = Reply(text=text, finish_reason="stop", usage={"input_tokens": 0, "output_tokens": 0},
                          cost_usd=0.0, cached=False, error=None, teacher=self.spec)
            if not text:
                reply.error, reply.finish_reason = "empty_input", "error"
            replies.append(reply)
        return replies


def rule_teacher(name: str, *, prices: PriceTable | None = None, timeout_s: float | None = None) -> RuleTeacher:
    # prices and timeout_s are common teacher options; rules are free and instant, so they need neither
    if name not in RULES:
        raise NotFoundError("rule teacher", name, list(RULES))
    return RuleTeacher(name, RULES[name])


# -- local transformers model

class LocalTeacher:
    """An in-process causal LM: batched greedy generation with left padding and the chat template."""

    provider, is_remote, price = "local", False, FREE

    def __init__(self, name: str, *, batch_size: int = 8, num_threads: int | None = None, model: Any = None,
                 tokenizer: Any = None, prices: PriceTable | None = None, timeout_s: float | None = None):
        # prices and timeout_s are accepted so every teacher takes the same options; a local model needs neither
        self.model, self.spec, self.batch_size = name, f"local:{name}", batch_size
        self.num_threads = num_threads  # torch threads while generating; 1 is fastest on a busy machine
        self._lm, self._tokenizer = model, tokenizer

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            from assay.models import load_causal_lm  # heavy: torch + transformers
            self._lm, self._tokenizer = load_causal_lm(self.model)
            self._lm.eval()
        return self._lm, self._tokenizer

    async def generate(self, requests: list[Request]) -> list[Reply]:
        return await asyncio.to_thread(self.generate_sync, requests)

    def generate_sync(self, requests: list[Request]) -> list[Reply]:
        """Micro-batches of similar prompt length; each request keeps its own max_tokens."""
        import torch

        if self.num_threads is None:
            return self._generate_all(requests)
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._generate_all(requests)
        finally:
            torch.set_num_threads(before)

    def _generate_all(self, requests: list[Request]) -> list[Reply]:
        lm, tok = self._load()
        prompts = [tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in requests]
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        # one temperature per micro-batch; within it, similar lengths so little is padding
        order = sorted(range(len(requests)), key=lambda i: (requests[i].temperature, lengths[i]))
        replies: list[Reply | None] = [None] * len(requests)
        start = 0
        while start < len(order):
            temperature = requests[order[start]].temperature
            idx = [i for i in order[start:start + self.batch_size] if requests[i].temperature == temperature]
            for i, reply in zip(idx, self._generate_batch(lm, tok, [prompts[i] for i in idx],
                                                          [requests[i] for i in idx])):
                replies[i] = reply
            start += len(idx)
        return replies  # type: ignore[return-value]

    def _generate_batch(self, lm: Any, tok: Any, prompts: list[str], requests: list[Request]) -> list[Reply]:
        from assay.evals.generate import generate_batch

        budget = max(r.max_tokens for r in requests)  # greedy: a shorter request's answer is a prefix
        outs = generate_batch(lm, tok, prompts, max_new_tokens=budget, temperature=requests[0].temperature)
        replies = []
        for out, request in zip(outs, requests):
            new = out.ids[: request.max_tokens]
            length_stop = len(out.ids) >= request.max_tokens  # no stop token within this request's budget
            replies.append(Reply(
                text=tok.decode(new, skip_special_tokens=True).strip() if len(new) < len(out.ids) else out.text,
                finish_reason="length" if length_stop else "stop",
                usage={"input_tokens": out.input_tokens, "output_tokens": len(new)}, cost_usd=0.0, cached=False,
                error="max_tokens" if length_stop else None, teacher=self.spec))
        return replies


