"""Review at scale on the embedded Argilla: push 5,000 records with 3 suggestions each, pull them back, and the
UI's record search latency on that dataset.

    python benchmarks/bench_review.py              # 5,000 records (starts its own embedded server)
    python benchmarks/bench_review.py --rows 1000

Counts every HTTP request the SDK client sends during push and pull (bulk: far fewer requests than records),
answers --answers records through the bulk responses route as one annotator, pulls all records back, and times
200 searches through POST /api/v1/me/datasets/{id}/records/search, the route the UI calls (text queries,
metadata filters, the annotator's pending queue sorted by agreement, deep pages).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assay.curation.synth.run import CANDIDATE_SCHEMA  # noqa: E402
from assay.records import conform  # noqa: E402
from assay.store import DatasetStore  # noqa: E402
from benchmarks.record import Row, options, record  # noqa: E402

TEACHERS = ["rule:lead", "local", "openai:gpt-4o-mini"]
WORDS = ("garden tomatoes compost invoice meeting dentist train budget recipe lentils passport insurance "
         "plumber birthday library running marathon tax refund holiday flights").split()


def dataset(home: Path, n: int):
    rng = random.Random(0)
    rows, cands = [], []
    for i in range(n):
        words = rng.sample(WORDS, 6)
        text = f"Note {i}: " + " ".join(f"{w} {rng.randint(1, 99)}" for w in words) + "."
        outs = [f"About {words[0]} and {words[1]}.", f"{words[0].capitalize()}, {words[2]}.", f"Note on {words[0]}."]
        agreement = round(rng.random(), 3)
        rows.append({"note_id": f"n{i:06d}", "title": words[0], "text": text, "category": words[0], "task": "summarize",
                     "instruction": "Summarize the following note.", "output": outs[0], "teacher": TEACHERS[0],
                     "origin": "export", "synthetic": False, "source_format": "json", "split": "train",
                     "agreement": agreement})
        cands += [{"note_id": f"n{i:06d}", "task": "summarize", "teacher": t, "output": o, "ok": True,
                   "chosen": k == 0, "score": round(rng.random(), 3)} for k, (t, o) in enumerate(zip(TEACHERS, outs))]
    table = pl.DataFrame([{k: c.get(k) for k in CANDIDATE_SCHEMA} for c in cands], schema=CANDIDATE_SCHEMA)
    return DatasetStore(home / "datasets").write("bench", conform(pl.DataFrame(rows)), step="synth", config={},
                                                 tables={"candidates": table}, task="summarize", teachers=TEACHERS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "ASSAY_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "assay", "review", "serve", "--port", str(port)], env=env,
                            stdout=open(home / "serve.log", "w"), stderr=subprocess.STDOUT)
    runtime = home / ".assay" / "argilla" / "server.json"
    for _ in range(1200):
        if runtime.exists():
            return proc
        if proc.poll() is not None:
            sys.exit(f"server exited: {(home / 'serve.log').read_text()[-500:]}")
        time.sleep(0.5)
    sys.exit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--answers", type=int, default=500, help="records one annotator answers before the pull")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    os.environ["ASSAY_HOME"] = str(home)
    port = free_port()
    proc = start(home, port)
    try:
        found = run(home, port, args)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    search = found["search_ms"]
    record("review", [
        Row(f"push {found['records']:,} records x {found['suggestions_per_record']} suggestions: seconds",
            f"{found['push_s']:.1f}", baseline="one record per HTTP request",
            ratio=f"{found['records_per_push_request']} records per request"),
        Row(f"{found['answers']} answers through the bulk route: seconds", f"{found['answer_bulk_s']:.1f}"),
        Row(f"pull {found['records']:,} records back: seconds", f"{found['pull_s']:.2f}",
            ratio=f"{found['pull_http_requests']} requests"),
        Row(f"UI record search, {search['n']} queries: p95", f"{search['p95']} ms (p50 {search['p50']}, max "
            f"{search['max']})", ratio=f"{search['p95'] / 300:.2f} of target", target="< 300 ms",
            met=found["search_p95_under_300ms"]),
    ], options(parser, args))


def run(home: Path, port: int, args) -> dict:
    from assay.curation.review.client import connect
    from assay.curation.review.pull import pull
    from assay.curation.review.push import PushOptions, push

    version = dataset(home, args.rows)
    client = connect()
    sent: list[str] = []
    client.http_client.event_hooks["request"].append(lambda request: sent.append(request.url.path))
    store = DatasetStore(home / "datasets")

    t0 = time.perf_counter()
    result = push(store, version.ref, client, PushOptions())
    push_s, push_requests = time.perf_counter() - t0, len(sent)
    assert result["added"] == args.rows, result

    url = f"http://127.0.0.1:{port}"
    key = json.loads((home / ".assay" / "argilla" / "credentials.json").read_text())["api_key"]
    api = httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": key}, timeout=120)
    ds = [d for d in api.get("/api/v1/me/datasets").json()["items"] if d["name"] == result["dataset"]][0]
    ids, offset = [], 0
    while offset < args.rows:
        page = api.get(f"/api/v1/datasets/{ds['id']}/records", params={"offset": offset, "limit": 1000}).json()
        ids += [r["id"] for r in page["items"]]
        offset += 1000
    t0 = time.perf_counter()
    for start_at in range(0, min(args.answers, len(ids)), 100):  # one annotator answers, 100 per bulk request
        items = [{"record_id": rid, "status": "submitted", "values": {"output": {"value": f"Reviewed {n}."},
                                                                       "quality": {"value": 4}}}
                 for n, rid in enumerate(ids[start_at:start_at + 100], start_at)]
        api.post("/api/v1/me/responses/bulk", json={"items": items}).raise_for_status()
    answer_s = time.perf_counter() - t0

    sent.clear()
    t0 = time.perf_counter()
    pulled = pull(store, version.ref, client)
    pull_s, pull_requests = time.perf_counter() - t0, len(sent)
    assert pulled.reviewed == min(args.answers, args.rows), pulled

    rng = random.Random(1)
    bodies = []
    for n in range(args.searches):
        kind = n % 4
        if kind == 0:
            bodies.append(({"query": {"text": {"q": " ".join(rng.sample(WORDS, 2))}}}, {}))
        elif kind == 1:
            bodies.append(({"filters": {"and": [{"type": "terms", "scope": {"entity": "metadata",
                            "metadata_property": "category"}, "values": [rng.choice(WORDS)]}]}}, {}))
        elif kind == 2:  # the annotation queue: the user's pending records, sorted by agreement
            bodies.append(({"filters": {"and": [{"type": "terms", "scope": {"entity": "response", "property": "status"},
                                                 "values": ["pending"]}]},
                            "sort": [{"scope": {"entity": "metadata", "metadata_property": "agreement"},
                                      "order": "asc"}]}, {}))
        else:  # a deep page
            bodies.append(({"filters": {"and": [{"type": "range", "scope": {"entity": "metadata",
                            "metadata_property": "agreement"}, "ge": 0.2, "le": 0.8}]}},
                           {"offset": rng.randint(0, args.rows // 2)}))
    latencies = []
    for body, params in bodies:
        t0 = time.perf_counter()
        api.post(f"/api/v1/me/datasets/{ds['id']}/records/search", json=body,
                 params={"limit": 50, **params}).raise_for_status()
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    found = {
        "records": args.rows, "suggestions_per_record": 1 + len(TEACHERS),
        "push_s": round(push_s, 2), "push_http_requests": push_requests,
        "records_per_push_request": round(args.rows / push_requests, 1),
        "answers": min(args.answers, args.rows), "answer_bulk_s": round(answer_s, 2),
        "pull_s": round(pull_s, 2), "pull_http_requests": pull_requests,
        "search_ms": {"p50": round(statistics.median(latencies), 1), "p95": round(p95, 1),
                      "max": round(latencies[-1], 1), "n": len(latencies)},
        "search_p95_under_300ms": p95 < 300,
    }
    print(json.dumps(found, indent=2))
    return found


if __name__ == "__main__":
    main()
