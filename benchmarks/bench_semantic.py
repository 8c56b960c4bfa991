"""Semantic dedupe of 10,000 notes against encoding them alone, with the same model and batch size.

    python benchmarks/bench_semantic.py            # 10k planted notes (real sentences), CPU
    python benchmarks/bench_semantic.py --n 2000   # quicker

The encode-only baseline runs before and after the dedupe and the ratio uses their mean, because
other work on a shared machine can change the speed of a several-minute run. Everything beyond the
encoding (length sort, blockwise cosine search, word-overlap check, clustering) must stay under 30%.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import planted  # noqa: E402

from benchmarks.record import Row, options, record  # noqa: E402


class TimedEncoder:
    """Passes encode() through and adds up the time spent in it, to split the dedupe's time."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0

    def encode(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.model.encode(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from assay.curation.config import SemanticDedupeConfig
    from assay.curation.dedupe import dedupe_semantic
    from assay.models import load_embedder

    cfg = SemanticDedupeConfig()
    data = planted.planted_notes(args.n)
    texts = data.notes["text"].to_list()
    model = load_embedder(cfg.model, device=args.device)
    model.encode(texts[:cfg.batch_size], batch_size=cfg.batch_size)  # warm up outside the timings
    print(f"{args.n:,} planted notes, {data.truth_pairs:,} true pairs; model {cfg.model} on {args.device}, "
          f"batch {cfg.batch_size}; {len(os.sched_getaffinity(0))} CPUs, torch {torch.get_num_threads()} threads, "
          f"{platform.machine()}, Python {platform.python_version()}", flush=True)

    def encode_only() -> float:
        start = time.perf_counter()
        model.encode(texts, batch_size=cfg.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - start

    before = encode_only()
    print(f"encode only: {before:.1f}s", flush=True)
    timed = TimedEncoder(model)
    start = time.perf_counter()
    result = dedupe_semantic(data.notes, cfg, embedder=timed)
    total = time.perf_counter() - start
    print(f"semantic dedupe: {total:.1f}s, of which encoding {timed.seconds:.1f}s and everything else "
          f"{total - timed.seconds:.1f}s", flush=True)
    after = encode_only()
    print(f"encode only again: {after:.1f}s", flush=True)
    scores = planted.pair_scores(data.truth, [result.extra["clusters"]])

    base = (before + after) / 2
    print("\n| method | notes | seconds | vs encode only | precision | recall | false merges | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| encode only (mean of before/after: {before:.1f}, {after:.1f}) | {args.n:,} | {base:.1f} | 1.00x "
          "| | | | |")
    print(f"| dedupe_semantic, defaults (cosine {cfg.threshold}, word overlap {cfg.min_word_overlap}) | {args.n:,} "
          f"| {total:.1f} | {total / base:.2f}x (limit 1.3x) | {scores.precision:.4f} | {scores.recall:.4f} "
          f"| {scores.false_merges} | {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} |")
    print(f"\nbeyond encoding, the dedupe took {total - timed.seconds:.1f}s: {(total - timed.seconds) / base:.3f}x "
          f"of encode-only (its own encoding ran {timed.seconds:.1f}s)")
    label = f"dedupe_semantic, defaults, {args.n:,} notes"
    record("semantic", [
        Row(f"{label}: seconds", f"{total:.1f}", baseline=f"encode only, mean of {before:.1f} and {after:.1f} s",
            ratio=f"{total / base:.2f}x", target="<= 1.3x", met=total / base <= 1.3),
        Row(f"{label}: beyond encoding", f"{total - timed.seconds:.1f} s", baseline="encode only",
            ratio=f"{(total - timed.seconds) / base:.3f}x"),
        Row(f"{label}: precision / recall (semantic pass alone)", f"{scores.precision:.4f} / {scores.recall:.4f}"),
    ], options(parser, args))


if __name__ == "__main__":
    main()
