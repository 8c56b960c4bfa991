"""A command that works through N requests against whatever ANTHROPIC_BASE_URL points at; tests kill it with -9
or run two at once.

    python tests/synth/synth_worker.py --n 200 [--batch] [--offset 0] [--budget USD] [--go FILE] > replies.jsonl

--go FILE waits for FILE to exist before the first request, so two workers start their work together.
A budget that runs out exits 3 after printing the replies it got (null for the ones not sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from assay.curation.synth import BudgetExceeded, Limits, Request, get_teacher, open_state, run_requests


def requests(n: int, offset: int = 0) -> list[Request]:
    return [Request([{"role": "system", "content": "Summarise the note in one line."},
                     {"role": "user", "content": f"note {i}: " + "words " * (i % 13)}], max_tokens=64,
                    metadata={"note_id": f"n{i}"}) for i in range(offset, offset + n)]


async def main(args: argparse.Namespace) -> int:
    cache, ledger = open_state()
    teacher = get_teacher(args.spec)
    if args.go:
        while not Path(args.go).exists():
            time.sleep(0.01)
    status = 0
    try:
        replies = await run_requests(teacher, requests(args.n, args.offset), cache=cache, ledger=ledger,
                                     batch=args.batch, poll_s=0.05, budget_usd=args.budget,
                                     limits=Limits(concurrency=args.concurrency, backoff_base_s=0.01,
                                                   backoff_max_s=0.05))
    except BudgetExceeded as exc:
        replies, status = exc.replies, 3
        print(str(exc), file=sys.stderr)
    await teacher.aclose()
    for reply in replies:
        print(json.dumps(None if reply is None else
                         {"text": reply.text, "error": reply.error, "cached": reply.cached}))
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--go", default=None)
    parser.add_argument("--spec", default="anthropic:claude-haiku-4-5")
    sys.exit(asyncio.run(main(parser.parse_args())))
