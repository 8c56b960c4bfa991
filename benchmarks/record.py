"""What every benchmark calls at its end: its figures, with the machine and the date, into results/<bench>.json.

    from benchmarks.record import Row, options, record
    record("dedupe", [Row("exact+near, 100k notes", "2.28 s", baseline="datasketch 32.29 s",
                          ratio="14.1x faster", target=">= 10x", met=True)], options(parser, args))

`benchmarks/results.py` turns the files into benchmarks/RESULTS.md. A row is one figure the script prints:
what was measured, its value, what it is compared against, the ratio (or a delta with its CI), the target
and whether it was met (None where the issue sets no target).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("torch", "transformers", "polars")


@dataclass
class Row:
    measurement: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The options this run changed from the script's defaults: a smaller or faster run says so in its record."""
    changed = []
    for action in parser._actions:  # argparse has no public list of its options
        if action.help == argparse.SUPPRESS or not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, action.default)
        if value != action.default:
            flag = action.option_strings[-1]
            changed.append(flag if value is True and action.nargs == 0 else f"{flag} {value}")
    return " ".join(changed)


def record(bench: str, rows: list[Row], changed: str = "", folder: Path = RESULTS) -> Path:
    """Write folder/<bench>.json atomically and return its path."""
    path = Path(folder) / f"{bench}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "bench": bench,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": f"options changed from the defaults: {changed}" if changed else "defaults",
        "command": shlex.join(["python", *sys.argv]),
        "wall_s": _process_seconds(),
        "head": _commit(),
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
    }
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded: {path}")
    return path


def write_atomic(path: Path, text: str) -> None:
    """A reader (or a bench killed half-way) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def machine() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        # at the end of the run: 1, 5 and 15 minutes, so the 15-minute figure covers most benches
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _process_seconds() -> float | None:
    """Seconds since this process started (Linux /proc): the bench's whole run, set-up included."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
        return round(time.time() - boot - start_ticks / os.sysconf("SC_CLK_TCK"), 1)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _commit() -> str | None:
    """HEAD when the bench ran (others may have had uncommitted changes in the tree)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=RESULTS.parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
