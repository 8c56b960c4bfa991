"""The one batched generator: left padding, KV cache, greedy by default, fixed seed.

Evals, training's validation ROUGE and the local teacher all generate through `generate`, so a
student is scored during training exactly as it is scored by `assay eval`. Prompts are sorted by
length into micro-batches (little padding) and the outputs returned in the caller's order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Generation:
    text: str
    ids: list[int]  # new tokens, stop token excluded
    stopped: bool  # ended on a stop token (False: ran into max_new_tokens)
    input_tokens: int
    seconds: float  # wall time of its micro-batch divided by the batch size


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def generate_batch(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
                   repetition_penalty: float = 1.0, seed: int = 0) -> list[Generation]:
    """One micro-batch, left-padded so every row's new tokens start at the same position."""
    import torch

    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # the caller's tokenizer is left as it was
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    sampling: dict[str, Any] = ({"do_sample": True, "temperature": temperature} if temperature > 0
                                else {"do_sample": False, "temperature": None})
    if repetition_penalty != 1.0:
        sampling["repetition_penalty"] = repetition_penalty
    torch.manual_seed(seed)
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 top_p=None, top_k=None, use_cache=True, **sampling)
    finally:
        model.train(was_training)
    per_row = (time.perf_counter() - started) / len(prompts)
    stops = stop_ids(model, tokenizer)
    found = []
    for row, mask in zip(out[:, enc["input_ids"].shape[1]:].tolist(), enc["attention_mask"]):
        end = next((j for j, t in enumerate(row) if t in stops), None)
        new = row if end is None else row[:end]
        found.append(Generation(tokenizer.decode(new, skip_special_tokens=True).strip(), new, end is not None,
                                int(mask.sum()), per_row))
    return found


def generate(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
             temperature: float = 0.0, repetition_penalty: float = 1.0, seed: int = 0,
             progress: Callable[[int], None] | None = None) -> list[Generation]:
    """All prompts, in micro-batches of similar length; results in the order of `prompts`."""
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    found: list[Generation | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        outs = generate_batch(model, tokenizer, [prompts[i] for i in idx], max_new_tokens=max_new_tokens,
                              temperature=temperature, repetition_penalty=repetition_penalty, seed=seed)
        for i, g in zip(idx, outs):
            found[i] = g
        if progress:
            progress(len(idx))
    return found  # type: ignore[return-value]


def completion_nll(model: Any, rows: list[tuple[list[int], list[int]]], *, batch_size: int = 8
                   ) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each completion given its prompt, as token ids."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    found = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            labels = torch.full_like(ids, -100)
            for k, (p, c) in enumerate(chunk):  # right padding: positions stay those of an unpadded row
                ids[k, :len(p) + len(c)] = torch.tensor(p + c)
                mask[k, :len(p) + len(c)] = 1
                labels[k, len(p):len(p) + len(c)] = torch.tensor(c)
            with torch.inference_mode():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
            nll = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                                  ignore_index=-100, reduction="none").view(len(chunk), -1)
            for k in range(len(chunk)):
                n = int((shift_labels[k] != -100).sum())
                found.append((float(nll[k].sum()), n))
    finally:
        model.train(was_training)
    return found
