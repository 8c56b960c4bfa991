"""Parity of an export against its reference model: logits, greedy decoding, perplexity, speed.

Both sides are `Runner`s (a torch model, an onnxruntime session, ...) that answer the same two
questions, so one function measures every format the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assay.errors import InputError
from assay.training.export.config import ParitySection, Tolerance

# Plain prose (written for this file) for the perplexity check: everyday English, no markup.
SAMPLE_TEXT = """\
The river town woke slowly on market days. Before the sun cleared the hills, farmers led their carts across \
the old stone bridge, and the baker on the corner opened his shutters to let the smell of bread drift into the \
square. Children ran between the stalls, counting apples and arguing about which dog belonged to whom. By nine \
o'clock the square was full, and the noise of bargaining rose above the sound of the water.

Most visitors came for the cheese, which was made in the valley from the milk of cows that grazed on the high \
meadows during the summer. The cheese makers kept their methods simple: warm the milk, add the culture, cut the \
curd, press it into wooden moulds, and wait. Some wheels were sold after a few weeks, soft and mild. Others were \
carried into cool cellars and turned by hand every few days for a year or more, until the rind was hard and the \
inside tasted of nuts and grass.

In the afternoon the light changed. Clouds came over the ridge, and the stall keepers began to pack away their \
goods. A few people stayed in the cafe by the fountain, drinking coffee and reading the newspaper, while the \
waiter stacked chairs and watched the sky. When the first drops of rain fell, the square emptied quickly, and \
only the pigeons remained, walking in circles around the puddles.

Keeping good notes is a habit that pays off over time. A short record of what was decided at a meeting, who \
agreed to do what, and when the next step is due can save hours of confusion later. The best notes are written \
soon after the event, in plain words, with dates and names spelled out. They do not need to be long. A list of \
three clear points is often more useful than a page of half-remembered details.
"""


class Runner(Protocol):
    """What parity needs from a loaded model: batch size one, token ids in, float32 numpy out."""

    def logits(self, ids: list[int]) -> np.ndarray:  # [len(ids), vocab]
        ...

    def generate(self, ids: list[int], max_new_tokens: int, eos: set[int]) -> list[int]:  # greedy, new ids only
        ...


class TorchRunner:
    """A transformers causal LM on CPU; greedy decoding with its KV cache, one token per step."""

    def __init__(self, model):
        self.model = model.eval()

    def logits(self, ids: list[int]) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids]), use_cache=False)
        return out.logits[0].float().numpy()

    def generate(self, ids: list[int], max_new_tokens: int, eos: set[int]) -> list[int]:
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        step = torch.tensor([ids])
        new: list[int] = []
        with torch.no_grad():
            for _ in range(max_new_tokens):
                out = self.model(input_ids=step, cache=cache, use_cache=True)
                token = int(out.logits[0, -1].argmax())
                new.append(token)
                if token in eos:
                    break
                step = torch.tensor([[token]])
        return new


@dataclass
class Probe:
    """The inputs parity runs on, tokenized once with the reference tokenizer."""

    prompts: list[list[int]]
    text: list[int]
    texts: list[str]  # the rendered prompts and the perplexity text, for tokenizer checks
    eos: set[int]
    max_new_tokens: int


def make_probe(tokenizer, section: ParitySection) -> Probe:
    if section.text_file is not None:
        try:
            text = Path(section.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the perplexity text: {exc}", file=str(section.text_file),
                             field="parity.text_file") from exc
    else:
        text = SAMPLE_TEXT
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"][: section.max_text_tokens]
    if len(text_ids) < 16:
        raise InputError(f"the perplexity text has {len(text_ids)} tokens; parity needs at least 16",
                         file=str(section.text_file), field="parity.text_file")
    prompts, rendered_all = [], []
    for prompt in section.prompts:
        if section.chat_template and getattr(tokenizer, "chat_template", None):
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                     add_generation_prompt=True)
        else:
            rendered = prompt
        prompts.append(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        rendered_all.append(rendered)
    eos = tokenizer.eos_token_id
    return Probe(prompts=prompts, text=text_ids, texts=rendered_all + [text],
                 eos=set(eos if isinstance(eos, list) else [eos]) - {None}, max_new_tokens=section.max_new_tokens)


@dataclass
class Reference:
    """What the reference model said on the probe, computed once and compared against each export."""

    continuations: list[list[int]]
    logits: list[np.ndarray]  # per prompt, over prompt + continuation
    perplexity: float
    tokens_per_s: float


def perplexity(runner: Runner, ids: list[int]) -> float:
    logits = runner.logits(ids).astype(np.float64)
    shifted = logits[:-1]
    top = shifted.max(-1, keepdims=True)
    logsumexp = np.log(np.exp(shifted - top).sum(-1)) + top[:, 0]
    nll = logsumexp - shifted[np.arange(len(ids) - 1), ids[1:]]
    return float(math.exp(nll.mean()))


def _generate_all(runner: Runner, probe: Probe) -> tuple[list[list[int]], float]:
    started = time.perf_counter()
    outs = [runner.generate(p, probe.max_new_tokens, probe.eos) for p in probe.prompts]
    seconds = time.perf_counter() - started
    return outs, sum(len(o) for o in outs) / max(seconds, 1e-9)


def reference(runner: Runner, probe: Probe) -> Reference:
    continuations, speed = _generate_all(runner, probe)
    logits = [runner.logits(p + c) for p, c in zip(probe.prompts, continuations)]
    return Reference(continuations=continuations, logits=logits, perplexity=perplexity(runner, probe.text),
                     tokens_per_s=speed)


def compare(runner: Runner, ref: Reference, probe: Probe) -> dict[str, Any]:
    """The figures of one export against the reference."""
    max_diff, diff_sum, diff_count, agree, positions = 0.0, 0.0, 0, 0, 0
    for prompt, cont, ref_logits in zip(probe.prompts, ref.continuations, ref.logits):
        got = runner.logits(prompt + cont)
        if got.shape != ref_logits.shape:
            raise AssertionError(f"export logits have shape {got.shape}, reference {ref_logits.shape}")
        diff = np.abs(got.astype(np.float64) - ref_logits)
        max_diff = max(max_diff, float(diff.max()))
        diff_sum += float(diff.sum())
        diff_count += diff.size
        # position i predicts token i + 1: the continuation is predicted from len(prompt) - 1 on
        predicted = got[len(prompt) - 1: len(prompt) - 1 + len(cont)].argmax(-1)
        agree += int((predicted == np.array(cont)).sum())
        positions += len(cont)
    outs, speed = _generate_all(runner, probe)
    ppl = perplexity(runner, probe.text)
    return {
        "max_abs_logit_diff": max_diff,
        "mean_abs_logit_diff": diff_sum / max(diff_count, 1),
        "greedy_agreement": agree / max(positions, 1),
        "greedy_exact": sum(o == c for o, c in zip(outs, ref.continuations)) / len(outs),
        "perplexity_reference": ref.perplexity,
        "perplexity": ppl,
        "perplexity_change": ppl / ref.perplexity - 1,
        "tokens_per_s": speed,
        "reference_tokens_per_s": ref.tokens_per_s,
        "prompts": len(probe.prompts),
        "text_tokens": len(probe.text),
    }


def judge(figures: dict[str, Any], tolerance: Tolerance) -> list[str]:
    """Each tolerance the figures break, as a line a person can read; empty when the export is good."""
    failures = []
    if tolerance.max_abs_logit_diff is not None and not figures["max_abs_logit_diff"] <= tolerance.max_abs_logit_diff:
        failures.append(f"max abs logit diff {figures['max_abs_logit_diff']:.4g} > {tolerance.max_abs_logit_diff:g}")
    if (tolerance.min_greedy_agreement is not None
            and not figures["greedy_agreement"] >= tolerance.min_greedy_agreement):
        failures.append(f"greedy agreement {figures['greedy_agreement']:.3f} < {tolerance.min_greedy_agreement:g}")
    if (tolerance.max_perplexity_change is not None
            and not figures["perplexity_change"] <= tolerance.max_perplexity_change):
        failures.append(f"perplexity change {figures['perplexity_change']:+.2%} > "
                        f"+{tolerance.max_perplexity_change:.2%} ({figures['perplexity_reference']:.3f} -> "
                        f"{figures['perplexity']:.3f})")
    return failures
