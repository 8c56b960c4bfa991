"""A command that works through N requests against whatever ANTHROPIC_BASE_URL points at; tests kill it with -9.

    python tests/synth/synth_worker.py --n 200 [--batch] > replies.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json

from curation.synth import Limits, Request, get_teacher, open_state, run_requests


def requests(n: int) -> list[Request]:
    return [Request([{"role": "system", "content": "Summarise the note in one line."},
                     {"role": "user", "content": f"note {i}: " + "words " * (i % 13)}], max_tokens=64,
                    metadata={"note_id": f"n{i}"}) for i in range(n)]


async def main(n: int, batch: bool, spec: str) -> None:
    cache, ledger = open_state()
    teacher = get_teacher(spec)
    replies = await run_requests(teacher, requests(n), cache=cache, ledger=ledger, batch=batch, poll_s=0.05,
                                 limits=Limits(concurrency=8, backoff_base_s=0.01, backoff_max_s=0.05))
    await teacher.aclose()
    for reply in replies:
        print(json.dumps({"text": reply.text, "error": reply.error, "cached": reply.cached}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--spec", default="anthropic:claude-haiku-4-5")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.batch, args.spec))
