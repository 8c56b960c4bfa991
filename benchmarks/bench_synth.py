"""Synthetic generation speed: the runner against the fake provider, and the local teacher's batching.

    .venv/bin/python benchmarks/bench_synth.py [--quick] [--skip-local]

Prints ratios against named baselines:
  throughput   1,000 requests, 100 ms each, concurrency 32, vs the ideal 1000/32 x 0.1 s   (want <= 1.25x)
  rpm          600 RPM asked, rate achieved at the server                                    (want within 5%)
  warm cache   the same run again: requests made (want 0) and speed-up over the cold run     (want >= 50x)
  local        SmolLM2 batched greedy vs one prompt at a time, tokens/s, same outputs        (want >= 3x)
The fake provider runs in its own process so the server's work does not share our interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FAKE = ROOT / "tests" / "synth" / "fake_provider.py"

from benchmarks.record import Row, options, record  # noqa: E402


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(FAKE), "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    return proc, f"http://127.0.0.1:{line[1]}"


def requests(n: int, tag: str):
    from assay.curation.synth import Request
    return [Request([{"role": "system", "content": "Summarise the note in one line."},
                     {"role": "user", "content": f"{tag} note {i}: the meeting moved to Tuesday."}], max_tokens=64)
            for i in range(n)]


async def timed_run(spec: str, reqs, limits) -> tuple[float, list]:
    from assay.curation.synth import get_teacher, open_state, run_requests
    cache, ledger = open_state()
    teacher = get_teacher(spec)
    started = time.perf_counter()
    replies = await run_requests(teacher, reqs, cache=cache, ledger=ledger, limits=limits)
    elapsed = time.perf_counter() - started
    await teacher.aclose()
    cache.conn.close()
    return elapsed, replies


def count_calls(url: str) -> int:
    # the fake's log lives in its process: count through a tiny stats request instead of sharing memory
    import httpx
    return httpx.get(f"{url}/_stats").json()["model_calls"]


def bench_remote(quick: bool) -> dict:
    from assay.curation.synth import Limits
    results = {}
    proc, url = start_fake(0.1)
    home = tempfile.TemporaryDirectory(prefix="assay-bench-synth-")
    os.environ.update(OPENAI_API_KEY="sk-bench-not-a-real-key-000000", OPENAI_BASE_URL=url + "/v1",
                      ASSAY_HOME=home.name)
    try:
        n, conc = (320, 32) if quick else (1000, 32)
        ideal = n / conc * 0.1
        runs = []  # best of 3 cold runs, each on fresh requests: the machine is shared, noise only adds time
        for attempt in range(1 if quick else 3):
            reqs = requests(n, f"throughput{attempt}")
            cpu = time.process_time()
            cold, replies = asyncio.run(timed_run("openai:gpt-4o-mini", reqs, Limits(concurrency=conc)))
            assert all(r.ok for r in replies), {r.error for r in replies}
            runs.append((cold, (time.process_time() - cpu) / n, reqs, replies))
        cold, cpu_per_request, reqs, replies = min(runs, key=lambda r: r[0])
        calls_cold = count_calls(url)
        warm, again = asyncio.run(timed_run("openai:gpt-4o-mini", reqs, Limits(concurrency=conc)))
        assert [r.text for r in again] == [r.text for r in replies]
        results["throughput"] = (cold, ideal, cpu_per_request, [r[0] for r in runs])
        results["warm"] = (cold, warm, count_calls(url) - calls_cold)

        rpm, m = 600, (31 if quick else 61)
        before = count_calls(url)
        asyncio.run(timed_run("openai:gpt-4o-mini", requests(m, "rpm"), Limits(concurrency=32, rpm=rpm)))
        import httpx
        starts = sorted(httpx.get(f"{url}/_stats").json()["starts"])[before:]
        achieved = (len(starts) - 1) / (starts[-1] - starts[0]) * 60
        results["rpm"] = (rpm, achieved, len(starts))
    finally:
        proc.terminate()
        proc.wait()
        home.cleanup()
    return results


def bench_local(quick: bool) -> tuple[float, float, bool, int]:
    os.environ.setdefault("ASSAY_CACHE", str(ROOT / ".cache" / "assay"))
    from assay.curation.synth import Request, get_teacher
    from assay.models import is_cached
    if not is_cached("smollm2-135m-instruct"):
        raise SystemExit("local: smollm2-135m-instruct not converted (assay models pull smollm2-135m-instruct)")
    topics = ["the garden", "a recipe for soup", "a trip to Lisbon", "tax paperwork", "a team meeting",
              "the bike repair", "a birthday party", "reading list", "home insurance", "learning Spanish",
              "a job interview", "the dentist", "moving house", "a running plan", "the car service", "a book club"]
    prompts = [Request([{"role": "user", "content": f"Write one sentence about {t}."}], max_tokens=32)
               for t in topics[: 8 if quick else 16]]
    teacher = get_teacher("local:smollm2-135m-instruct", batch_size=len(prompts), num_threads=1)
    teacher.generate_sync(prompts[:2])  # load and warm up
    started = time.perf_counter()
    single = [teacher.generate_sync([p])[0] for p in prompts]
    t_single = time.perf_counter() - started
    started = time.perf_counter()
    batched = teacher.generate_sync(prompts)
    t_batched = time.perf_counter() - started
    tokens = sum(r.usage["output_tokens"] for r in batched)
    same = [r.text for r in single] == [r.text for r in batched]
    return tokens / t_single, tokens / t_batched, same, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke check")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    print(f"machine     {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    remote = bench_remote(args.quick)
    cold, ideal, cpu, all_runs = remote["throughput"]
    print(f"throughput  {cold:6.2f} s for the run vs ideal {ideal:.3f} s: {cold / ideal:.3f}x the ideal "
          f"(want <= 1.25); runs {', '.join(f'{t:.2f}' for t in all_runs)} s, client CPU {cpu * 1000:.2f} ms/request")
    asked, achieved, n = remote["rpm"]
    print(f"rpm         asked {asked}, achieved {achieved:.1f} over {n} requests: "
          f"{achieved / asked:.3f}x (want 0.95-1.05)")
    cold, warm, calls = remote["warm"]
    print(f"warm cache  {warm * 1000:6.1f} ms vs cold {cold:.2f} s: {cold / warm:.0f}x faster, {calls} requests "
          f"(want >= 50x, 0)")
    total = 320 if args.quick else 1000  # bench_remote's request count
    rows = [Row(f"{total:,} requests at 100 ms, concurrency 32: seconds (best of {len(all_runs)})", f"{cold:.2f}",
                baseline=f"ideal {ideal:.3f} s", ratio=f"{cold / ideal:.3f}x the ideal", target="<= 1.25x",
                met=cold / ideal <= 1.25),
            Row(f"RPM limit {asked}, {n} requests: achieved", f"{achieved:.1f}", baseline=f"{asked} asked",
                ratio=f"{achieved / asked:.3f}x", target="0.95-1.05x", met=0.95 <= achieved / asked <= 1.05),
            Row(f"warm-cache rerun of the same {total:,}", f"{warm * 1000:.0f} ms, {calls} requests",
                baseline=f"the cold run, {cold:.2f} s", ratio=f"{cold / warm:.0f}x faster",
                target=">= 50x, 0 requests", met=cold / warm >= 50 and calls == 0)]
    if not args.skip_local:
        single, batched, same, tokens = bench_local(args.quick)
        print(f"machine     load average {os.getloadavg()[0]:.1f} at the end")
        print(f"local       batched {batched:.1f} tok/s vs one at a time {single:.1f} tok/s: {batched / single:.2f}x "
              f"({tokens} tokens, same outputs: {same}) (want >= 3x, True)")
        rows.append(Row(f"local SmolLM2, {tokens} tokens batched greedy: tok/s", f"{batched:.1f}",
                        baseline=f"one prompt at a time, {single:.1f} tok/s",
                        ratio=f"{batched / single:.2f}x, same outputs: {same}", target=">= 3x, same outputs",
                        met=batched / single >= 3 and same))
    record("synth", rows, options(parser, args))


if __name__ == "__main__":
    main()
