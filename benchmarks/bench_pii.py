"""Privacy guard recall per type, false positives on notes without PII, and time on adversarial input.

    python benchmarks/bench_pii.py                       # tests/data/pii/bench.jsonl
    python benchmarks/bench_pii.py --corpus tests/data/pii/heldout.jsonl --misses
    python benchmarks/bench_pii.py --corpus tests/data/pii/addresses_passports.jsonl   # lower case, passports

A planted item counts as caught only when every character of it lies inside a redacted span (a name of
which only the first word is redacted is a miss); "typed" also asks that the covering span has the
planted type. A note without planted items counts as a false positive when anything in it is redacted.
`adversarial_inputs()` is shared with tests/synth/test_pii_linear.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assay.curation.synth.pii import TYPES, Vault, find_pii  # noqa: E402
from benchmarks.record import Row, options, record  # noqa: E402

DEFAULT_CORPUS = ROOT / "tests" / "data" / "pii" / "bench.jsonl"
# what the guard scored on each corpus before the work that corpus was written for (measured, not rerun)
BASELINES = {
    "bench.jsonl": "the old guard: 121/302 on both corpora together (README, not rerun)",
    "bench_heldout.jsonl": "the old guard: 121/302 on both corpora together (README, not rerun)",
    "addresses_passports.jsonl": "the guard before lower-case addresses, postcodes and passports: 6/58, "
                                 "2 of 54 notes without PII redacted (not rerun)",
}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure(rows: list[dict]) -> dict:
    """Per-type planted/caught/typed counts, false positives, and the misses with their notes."""
    planted, caught, typed = Counter(), Counter(), Counter()
    misses, false_spans, flagged_clean, clean = [], [], 0, 0
    for row in rows:
        text = row["text"]
        ents = find_pii(text)
        for item in row["planted"]:
            start = text.index(item["value"])
            end = start + len(item["value"])
            covering = [e for e in ents if e.start < end and start < e.end]
            covered = set().union(set(), *(range(max(e.start, start), min(e.end, end)) for e in covering))
            planted[item["type"]] += 1
            if len(covered) == end - start:
                caught[item["type"]] += 1
                typed[item["type"]] += any(e.type == item["type"] for e in covering)
            else:
                misses.append({"type": item["type"], "value": item["value"], "text": text,
                               "found": [(e.type, e.value) for e in covering]})
        values = [item["value"] for item in row["planted"]]
        extra = [(e.type, e.value) for e in ents if not any(e.value in v or v in e.value for v in values)]
        false_spans += [{"type": t, "value": v, "text": text} for t, v in extra]
        if not row["planted"]:
            clean += 1
            flagged_clean += bool(ents)
        vault = Vault()
        back, unknown = vault.restore(vault.redact(text))
        assert back == text and unknown == 0, f"redaction does not restore exactly: {text!r}"
    return {"planted": planted, "caught": caught, "typed": typed, "misses": misses, "false_spans": false_spans,
            "clean_notes": clean, "clean_flagged": flagged_clean}


def adversarial_inputs(size: int = 10_000) -> dict[str, str]:
    """Inputs built to make a backtracking regex go quadratic or worse: long runs that almost match."""
    k = size
    return {
        "rue_run": "1 rue " + "a" * (k - 7) + "!",
        "letters": "a" * k,
        "capitals": "A" * k,
        "digits": "1" * k,
        "digits_spaced": "1 " * (k // 2),
        "plus_digits": "+1 " * (k // 3),
        "dashes": "1-" * (k // 2),
        "parens": "(1" * (k // 2),
        "at_signs": "a@" * (k // 2),
        "dots": "a." * (k // 2),
        "spaces": "account" + " " * k + "x",
        "url_query": "https://x.io/?" + "a" * k + "=1",
        "url_run": "http://" + "a." * (k // 2),
        "base64": ("Ab1+/" * (k // 5)),
        "words_street": "12 " + "Main " * (k // 5) + "!",
        "capital_words": "Anna " * (k // 5),
        "password": "password: " * (k // 10),
        "pin": "PIN " * (k // 4),
        "sk_run": "sk-" * (k // 3),
        "email_labels": "a@" + "b." * (k // 2) + "1",
        "spelled_email": "tom at " + "gmail dot " * (k // 10),
        "iban_run": "DE89 " * (k // 5),
        "header": "From: " + "Anna, " * (k // 6),
        "hex": "0123456789abcdef" * (k // 16),
        "mixed": ("Call Anna at +49 30 1234567 or anna@example.com, 12 Main Street. " * (k // 66)),
        "lower_street_words": "at 12 " + "oak " * (k // 4) + "lane with",
        "lower_streets": "18 oak lane " * (k // 12),
        "postcode_run": "nw1 6xe " * (k // 8),
        "passport_words": "passport " * (k // 9),
        "passport_numbers": "passport 123456789 " * (k // 19),
    }


def time_adversarial(size: int = 10_000) -> dict[str, float]:
    out = {}
    for name, text in adversarial_inputs(size).items():
        start = time.perf_counter()
        Vault().redact(text)
        out[name] = time.perf_counter() - start
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--misses", action="store_true", help="list every miss and every false span")
    ap.add_argument("--size", type=int, default=10_000, help="characters per adversarial input")
    args = ap.parse_args()

    rows = load(args.corpus)
    r = measure(rows)
    print(f"corpus {args.corpus.relative_to(ROOT) if args.corpus.is_relative_to(ROOT) else args.corpus}: "
          f"{len(rows)} notes, {sum(r['planted'].values())} planted items, {r['clean_notes']} notes without PII")
    print(f"{'type':<8} {'planted':>7} {'caught':>6} {'recall':>7} {'typed':>6}")
    for kind in TYPES:
        n = r["planted"][kind]
        if n:
            print(f"{kind:<8} {n:>7} {r['caught'][kind]:>6} {r['caught'][kind] / n:>7.1%} {r['typed'][kind]:>6}")
    total, got = sum(r["planted"].values()), sum(r["caught"].values())
    print(f"{'overall':<8} {total:>7} {got:>6} {got / total:>7.1%} {sum(r['typed'].values()):>6}")
    clean = r["clean_notes"]
    if clean:
        print(f"false positives: {r['clean_flagged']}/{clean} notes without PII had something redacted "
              f"({r['clean_flagged'] / clean:.1%}); {len(r['false_spans'])} spans redacted beyond the planted items "
              f"in all notes")
    if args.misses:
        for m in r["misses"]:
            print(f"MISS {m['type']}: {m['value']!r} found={m['found']} | {m['text'][:100]!r}")
        for f in r["false_spans"]:
            print(f"EXTRA {f['type']}: {f['value']!r} | {f['text'][:100]!r}")
    timings = time_adversarial(args.size)
    worst = max(timings, key=timings.get)
    print(f"adversarial inputs of {args.size} characters: {len(timings)} inputs, worst {worst} "
          f"{timings[worst]:.3f} s, total {sum(timings.values()):.2f} s")
    corpus = args.corpus.name
    rows = [Row(f"recall {kind} ({corpus})", f"{r['caught'][kind]}/{r['planted'][kind]}")
            for kind in TYPES if r["planted"][kind]]
    rows.append(Row(f"recall overall ({corpus})", f"{got}/{total} ({got / total:.1%})",
                    baseline=BASELINES.get(corpus, "")))
    if clean:
        rows.append(Row(f"notes without PII redacted ({corpus})", f"{r['clean_flagged']}/{clean}", target="0",
                        met=r["clean_flagged"] == 0))
    rows.append(Row(f"worst adversarial input, {args.size:,} characters", f"{timings[worst]:.3f} s ({worst})",
                    baseline='the old guard: "1 rue " + "a"*100 + "!" took 12 s (README, not rerun)'))
    # each corpus keeps its own record: pii (bench.jsonl), pii-bench_heldout, ...
    record("pii" if args.corpus == DEFAULT_CORPUS else f"pii-{args.corpus.stem}", rows, options(ap, args))


if __name__ == "__main__":
    main()
