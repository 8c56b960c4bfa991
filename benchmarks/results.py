"""Compile benchmarks/results/*.json (written by each bench through record.py) into benchmarks/RESULTS.md.

    python benchmarks/results.py              # what `make bench` and `make bench-NAME` run after the benches
    python benchmarks/results.py --results DIR --out FILE

One section per bench (date, command, machine, one table of its figures against their baselines and targets),
then the benches with no record yet. Benches and rows keep a fixed order, so an unchanged record gives an
unchanged file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.record import RESULTS, write_atomic  # noqa: E402

OUT = HERE / "RESULTS.md"


def bench_names(folder: Path = HERE) -> list[str]:
    """Every benchmark script: bench_NAME.py gives NAME (what `make bench-NAME` runs)."""
    return sorted(p.stem.removeprefix("bench_") for p in folder.glob("bench_*.py"))


def load(folder: Path) -> list[dict]:
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc}); rerun its bench or delete it") from exc
        lacking = sorted({"bench", "rows", "machine"} - set(data if isinstance(data, dict) else ()))
        if lacking:
            raise ValueError(f"{path}: not a bench record (no {', '.join(lacking)}); rerun its bench or delete it")
        records.append(data)
    return sorted(records, key=lambda r: r["bench"])


def render(folder: Path = RESULTS, benches: list[str] | None = None) -> str:
    """RESULTS.md's text from the records in `folder`; `benches` (default: every bench_*.py) may lack a record."""
    records = load(folder)
    benches = bench_names() if benches is None else benches
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/results.py` from `benchmarks/results/*.json` (one file per bench, written by the",
             "bench itself at the end of its run): do not edit by hand. `make bench` runs every bench and rewrites",
             "this file; `make bench-NAME` runs one; `make bench-results` only rewrites it. A bench run with other",
             "options than its defaults (a smaller, faster run) says so under its name.", ""]
    if records:
        lines += ["| bench | date (UTC) | run | targets met |", "| --- | --- | --- | --- |"]
        for r in records:
            lines.append(f"| [{r['bench']}](#{_anchor(r['bench'])}) | {r.get('date', '?')[:16].replace('T', ' ')} "
                         f"| {_cell(r.get('mode', '?'))} | {_met_count(r['rows'])} |")
        lines.append("")
    for r in records:
        lines += _section(r)
    recorded = {r["bench"].split("-", 1)[0] for r in records}
    missing = [b for b in benches if b not in recorded]
    lines += ["## Not run on this machine", ""]
    lines += [f"- {b}: `make bench-{b}`" for b in missing] or ["Every bench has a record."]
    return "\n".join(lines) + "\n"


def _section(r: dict) -> list[str]:
    m = r["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(m.get("packages", {}).items()) if v)
    load = m.get("load_average") or []
    wall = r.get("wall_s")
    out = [f"## {r['bench']}", "",
           f"- run: {r.get('date', '?')}, `{r.get('command', '?')}` ({r.get('mode', '?')})"
           + (f", {wall:,.0f} s" if wall is not None else "") + (f", HEAD {r['head']}" if r.get("head") else ""),
           f"- machine: {m.get('cpu', '?')}, {m.get('cores_usable', m.get('cores', '?'))} cores, "
           f"{m.get('ram_gib', '?')} GiB RAM, {m.get('os', '?')}, Python {m.get('python', '?')}"
           + (f", {packages}" if packages else "")
           + (f"; load average {' / '.join(f'{x:.2f}' for x in load)} (1/5/15 min) at the end" if load else "")
           + (f"; OMP_NUM_THREADS={m['omp_num_threads']}" if m.get("omp_num_threads") else ""),
           "", "| measurement | value | baseline | ratio | target | met? |", "| --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        met = {True: "yes", False: "**no**", None: ""}[row.get("met")]
        cells = [row.get(k, "") for k in ("measurement", "value", "baseline", "ratio", "target")] + [met]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out + [""]


def _met_count(rows: list[dict]) -> str:
    judged = [row.get("met") for row in rows if row.get("met") is not None]
    return f"{sum(judged)} of {len(judged)}" if judged else "no targets"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, spaces to dashes, other punctuation dropped."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of <bench>.json records")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    try:
        text = render(args.results)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    write_atomic(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
