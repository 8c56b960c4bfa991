"""Exact + near dedupe speed, memory and accuracy against datasketch, on planted near-duplicates of real text.

    python benchmarks/bench_dedupe.py                 # 100k notes: ours vs datasketch MinHash + MinHashLSH
    python benchmarks/bench_dedupe.py --scale         # also 1M notes (ours only), time ratio 1M / 100k

Every method runs in its own process, so its peak RSS is its own (data loaded, imports included).
The datasketch baseline uses the same normalization and shingling as ours (word 3-grams of the
NFKC-casefolded text), 128 permutations and threshold 0.8, and clusters the LSH query results.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import planted  # noqa: E402

from benchmarks.record import Row, options, record  # noqa: E402


def run_ours(n: int, repeat: int, shingle: str, ngram: int, threshold: float) -> dict:
    from assay.curation.config import DedupeConfig, NearDedupeConfig, SemanticDedupeConfig
    from assay.curation.dedupe import dedupe

    data = planted.planted_notes(n)
    cfg = DedupeConfig(near=NearDedupeConfig(shingle=shingle, ngram=ngram, threshold=threshold),
                       semantic=SemanticDedupeConfig(enabled=False))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        results = dedupe(data.notes, cfg)
        times.append(time.perf_counter() - start)
    scores = planted.pair_scores(data.truth, [r.extra["clusters"] for r in results])
    return _report(times, scores, kept=results[-1].kept.height)


def run_datasketch(n: int, repeat: int, ngram: int, threshold: float, num_perm: int = 128) -> dict:
    data = planted.planted_notes(n)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        edges = _datasketch(data.notes, ngram, threshold, num_perm)
        times.append(time.perf_counter() - start)
    table = pl.DataFrame(edges, schema={"note_id": pl.String, "kept_id": pl.String}, orient="row")
    return _report(times, planted.pair_scores(data.truth, [table]), kept=None)


def _datasketch(notes: pl.DataFrame, ngram: int, threshold: float, num_perm: int) -> list[tuple[str, str]]:
    from datasketch import MinHash, MinHashLSH

    from assay.curation.minhash import normalize_texts

    ids = notes["note_id"].to_list()
    texts = normalize_texts(notes["text"]).to_list()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    for key, text in zip(ids, texts):
        words = text.split(" ")
        grams = {" ".join(words[k:k + ngram]).encode() for k in range(max(1, len(words) - ngram + 1))}
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch(list(grams))
        lsh.insert(key, m)
        sketches.append(m)
    return [(key, other) for key, m in zip(ids, sketches) for other in lsh.query(m) if other != key]


def _report(times: list[float], scores: planted.Scores, kept: int | None) -> dict:
    return {"seconds": min(times), "times": times, "precision": scores.precision, "recall": scores.recall,
            "true_pairs": scores.true_pairs, "found_pairs": scores.found_pairs, "false_merges": scores.false_merges,
            "kept": kept, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because on Linux ru_maxrss survives exec and would
    report the parent's peak for a freshly started child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: list[str]) -> dict:
    """Run one method in a fresh process and return its report."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--scale", action="store_true", help="also run 1M notes (ours only)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method in one process; the best counts")
    parser.add_argument("--scale-repeat", type=int, default=2, help="runs of the 1M case")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n, repeat, *rest = args.child
        if method == "ours":
            report = run_ours(int(n), int(repeat), rest[0], int(rest[1]), float(rest[2]))
        else:
            report = run_datasketch(int(n), int(repeat), int(rest[0]), float(rest[1]))
        print(json.dumps(report))
        return

    from assay.curation.config import NearDedupeConfig

    default = NearDedupeConfig()
    sizes = [args.n] + ([1_000_000] if args.scale else [])
    for n in sizes:
        t = time.perf_counter()
        data = planted.planted_notes(n)  # built once and cached, outside the timings
        print(f"planted set: {n:,} notes, {data.truth.height:,} in planted groups, {data.truth_pairs:,} true pairs "
              f"({time.perf_counter() - t:.0f}s to build or load)", flush=True)
        del data
    print(f"machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}\n", flush=True)

    rows = []
    same = (default.shingle, str(default.ngram))
    n, rep = str(args.n), str(args.repeat)
    rows.append((f"assay exact+near, defaults ({default.shingle} {default.ngram}-grams, {default.num_perm} perm, "
                 f"t={default.threshold})", args.n, child(["ours", n, rep, *same, str(default.threshold)])))
    rows.append(("assay exact+near, t=0.8 (baseline's settings)", args.n, child(["ours", n, rep, *same, "0.8"])))
    if not args.no_baseline:
        rows.append(("datasketch MinHash + MinHashLSH, t=0.8", args.n,
                     child(["datasketch", n, rep, str(default.ngram), "0.8"])))
    if args.scale:
        rows.append((rows[0][0], 1_000_000,
                     child(["ours", "1000000", str(args.scale_repeat), *same, str(default.threshold)])))

    base = None if args.no_baseline else rows[2][2]["seconds"]
    print(f"best of {args.repeat} runs per method ({args.scale_repeat} at 1M), every run in the last column\n")
    print("| method | notes | seconds | vs datasketch | precision | recall | false merges | peak RSS MB | runs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, size, r in rows:
        ratio = "" if not base or size != args.n else "baseline" if name.startswith("datasketch") \
            else f"{base / r['seconds']:.1f}x faster"
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        print(f"| {name} | {size:,} | {r['seconds']:.2f} | {ratio} | {r['precision']:.4f} | {r['recall']:.4f} "
              f"| {r['false_merges']} | {r['peak_rss_mb']:.0f} | {runs} |")
    if args.scale:
        print(f"\n1M / 100k time: {rows[-1][2]['seconds'] / rows[0][2]['seconds']:.1f}x (limit 12x)")
    record("dedupe", recorded(rows, base, args), options(parser, args))


def recorded(rows: list, base: float | None, args) -> list[Row]:
    """The table's figures; the targets are the defaults' (>= 10x datasketch, P and R >= 0.95, < 2 GB, 1M <= 12x)."""
    out = []
    for k, (name, size, r) in enumerate(rows):
        defaults = k == 0 or (args.scale and k == len(rows) - 1)
        label = f"{name}, {size:,} notes"
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        if base and size == args.n:
            speed = base / r["seconds"]
            out.append(Row(f"{label}: seconds (best of {args.repeat})", f"{r['seconds']:.2f} (runs {runs})",
                           baseline=f"datasketch {base:.2f} s", ratio="baseline" if name.startswith("datasketch")
                           else f"{speed:.1f}x faster", target=">= 10x faster" if k == 0 else "",
                           met=speed >= 10 if k == 0 else None))
        else:
            out.append(Row(f"{label}: seconds", f"{r['seconds']:.2f} (runs {runs})"))
        out.append(Row(f"{label}: precision / recall on planted pairs", f"{r['precision']:.4f} / {r['recall']:.4f}",
                       target=">= 0.95 / >= 0.95" if defaults else "",
                       met=r["precision"] >= 0.95 and r["recall"] >= 0.95 if defaults else None))
        out.append(Row(f"{label}: peak RSS", f"{r['peak_rss_mb']:.0f} MB", target="< 2048 MB" if k == 0 else "",
                       met=r["peak_rss_mb"] < 2048 if k == 0 else None))
    if args.scale:
        scale = rows[-1][2]["seconds"] / rows[0][2]["seconds"]
        out.append(Row("1M / 100k time", f"{scale:.1f}x", baseline="the 100k run", ratio=f"{scale:.1f}x",
                       target="<= 12x", met=scale <= 12))
    return out


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
