"""Batched prediction (evals.generate.generate, batch 8) against one-at-a-time `model.generate`, SmolLM2 on CPU.

    python benchmarks/bench_predict.py                        # 32 sample notes, 64 new tokens, 1 thread, 2 rounds
    python benchmarks/bench_predict.py --threads 2 --max-new-tokens 96

Same model object (SmolLM2-135M-Instruct, fp32), same 32 prompts (the summarize student prompt, the way
`assay eval` asks it, over the first 32 notes of datasets/sample/notes.json), greedy. The baseline is the
usual loop: tokenize one prompt, `model.generate(max_new_tokens, do_sample=False)`, decode. The machine is
shared, so the two run interleaved (baseline, batched, baseline, batched) and every run is printed.

Outputs are compared token by token (up to the stop token). Where a batched output differs, the script finds
the first differing step and the unbatched model's top-2 logit gap there: a near-tie flipped by the
different arithmetic of a padded batch (other matmul shapes, masked positions) rather than a bug.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
NOTES = REPO / "datasets" / "sample" / "notes.json"

from benchmarks.record import Row, options, record  # noqa: E402


def prompts(tokenizer, n: int) -> list[str]:
    from assay.curation.synth.tasks import Prompt, get_task
    from assay.evals.predict import student_messages
    from assay.evals.suite import Example, load_suite
    from assay.training.data import render_prompt

    suite = load_suite("summarize")
    instruction = get_task("summarize").student_instruction(Prompt())
    notes = json.loads(NOTES.read_text(encoding="utf-8"))[:n]
    return [render_prompt(tokenizer, student_messages(suite, Example(n["id"], n["id"], n["title"], n["content"], ""),
                                                      instruction)) for n in notes]


def one_at_a_time(model, tokenizer, texts: list[str], max_new_tokens: int, stops: set[int]) -> list[list[int]]:
    import torch

    found = []
    with torch.inference_mode():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
            new = out[0, enc["input_ids"].shape[1]:].tolist()
            end = next((j for j, t in enumerate(new) if t in stops), None)
            found.append(new if end is None else new[:end])
    return found


def batched(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int) -> list[list[int]]:
    from assay.evals.generate import generate

    return [g.ids for g in generate(model, tokenizer, texts, max_new_tokens=max_new_tokens, batch_size=batch_size)]


def divergence(model, tokenizer, text: str, single: list[int], other: list[int]) -> dict:
    """Where two greedy outputs part, and how close the unbatched model's top two tokens were there."""
    import torch

    step = next(j for j, (a, b) in enumerate(zip(single + [None], other + [None])) if a != b)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + single[:step]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    top = torch.topk(logits, 2)
    return {"step": step, "single_token": tokenizer.decode(single[step:step + 1]) if step < len(single) else "<stop>",
            "batched_token": tokenizer.decode(other[step:step + 1]) if step < len(other) else "<stop>",
            "top2_logit_gap": round(float(top.values[0] - top.values[1]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    from assay.evals.generate import stop_ids
    from assay.models import load_causal_lm

    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = prompts(tokenizer, args.prompts)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    stops = stop_ids(model, tokenizer)
    runs: dict[str, list[float]] = {"one-at-a-time": [], "batched": []}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(args.rounds):
        for name in runs:
            started = time.perf_counter()
            out = (one_at_a_time(model, tokenizer, texts, args.max_new_tokens, stops) if name == "one-at-a-time"
                   else batched(model, tokenizer, texts, args.max_new_tokens, args.batch_size))
            runs[name].append(time.perf_counter() - started)
            if name in outputs and outputs[name] != out:
                print(f"warning: {name} gave other outputs in a later round")
            outputs[name] = out

    single, batch = outputs["one-at-a-time"], outputs["batched"]
    differ = [k for k, (a, b) in enumerate(zip(single, batch)) if a != b]
    print(f"SmolLM2-135M-Instruct fp32, CPU {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"{len(texts)} prompts ({min(lengths)}-{max(lengths)} tokens, mean {sum(lengths) / len(lengths):.0f}), "
          f"max {args.max_new_tokens} new tokens, greedy; batch {args.batch_size}")
    print(f"new tokens generated: {sum(map(len, single))} one at a time, {sum(map(len, batch))} batched")
    print("| variant | runs (s) | best (s) | examples/s (best) |")
    print("| --- | --- | ---: | ---: |")
    for name, secs in runs.items():
        print(f"| {name} | {', '.join(f'{s:.1f}' for s in secs)} | {min(secs):.1f} | {len(texts) / min(secs):.2f} |")
    pairs = [a / b for a, b in zip(runs["one-at-a-time"], runs["batched"])]
    print(f"speed-up per round: {', '.join(f'{r:.2f}x' for r in pairs)}; best vs best: "
          f"{min(runs['one-at-a-time']) / min(runs['batched']):.2f}x (target >= 3x)")
    # a micro-batch runs until its longest row stops; rows that stopped earlier are still computed
    order = sorted(range(len(texts)), key=lambda k: lengths[k])  # the micro-batches generate() forms
    computed = sum(len(chunk) * min(args.max_new_tokens, max(len(batch[k]) + 1 for k in chunk))
                   for chunk in (order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)))
    useful = sum(min(args.max_new_tokens, len(out) + 1) for out in batch)
    print(f"decode row-steps: {useful} needed, {computed} computed in batches ({1 - useful / computed:.0%} on rows "
          "that had already stopped)")
    print(f"identical greedy outputs: {len(texts) - len(differ)} of {len(texts)}")
    best = min(runs["one-at-a-time"]) / min(runs["batched"])
    single_s = ", ".join(f"{x:.1f}" for x in runs["one-at-a-time"])
    record("predict", [
        Row(f"batched generate, batch {args.batch_size}, {len(texts)} prompts: seconds (best of {args.rounds})",
            f"{min(runs['batched']):.1f} ({', '.join(f'{x:.1f}' for x in runs['batched'])})",
            baseline=f"one-at-a-time model.generate: {single_s} s", ratio=f"{best:.2f}x faster (best vs best)",
            target=">= 3x", met=best >= 3),
        Row("identical greedy outputs", f"{len(texts) - len(differ)} of {len(texts)}",
            baseline="one-at-a-time outputs", target="all", met=not differ),
    ], options(parser, args))
    for k in differ:
        print(f"  prompt {k} ({lengths[k]} tokens): " + json.dumps(divergence(model, tokenizer, texts[k], single[k],
                                                                              batch[k])))


if __name__ == "__main__":
    main()
