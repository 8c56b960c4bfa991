"""On-device figures of each export of a model: latency p50/p95, time to first token, tokens/s, peak memory, size.

    models/<name>/<version>/exports/<fmt>/export.json ──▶ one fresh process per export (load_export, greedy
        generation of the suite's prompts) ──▶ ondevice.json beside export.json (lineage.ondevice merges it)

Each export is measured in its own Python process (`python -m evals.ondevice`), because peak memory is a
process-lifetime high-water mark (VmHWM) and torch keeps freed memory in its allocator: measured one after
another in one process, every export after the first would report the largest of them. tracemalloc is no
help: it sees Python objects, not the tensors torch or onnxruntime allocate.

Every example generates exactly `max_new_tokens` tokens (no stop token), so latency is the time of a fixed
amount of work, comparable across formats whose greedy outputs stop at different places.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from assay.errors import AssayError

RESULT = "ondevice.json"
TIMEOUT_S = 900


class OndeviceError(AssayError):
    """A measuring process that failed: its stderr says why."""


def export_folders(model_folder: Path) -> list[Path]:
    """The export folders of a model version that passed parity (a failed export is not measured)."""
    found = []
    for info_file in sorted(Path(model_folder).glob("exports/*/export.json")):
        if info_file.parent.name.startswith("."):
            continue
        if json.loads(info_file.read_text(encoding="utf-8")).get("status") == "ok":
            found.append(info_file.parent)
    return found


def size_on_disk(folder: Path) -> int:
    """Bytes of the export's files (its evidence files excluded), what a device has to hold."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.name not in ("export.json", RESULT))


def _key(folder: Path, prompts: list[list[dict]], max_new_tokens: int, threads: int | None) -> str:
    info = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    payload = json.dumps([info.get("created_at"), info.get("size_bytes"), prompts, max_new_tokens, threads,
                          _machine()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def measure_export(folder: Path, prompts: list[list[dict]], *, max_new_tokens: int = 32,
                   threads: int | None = None, force: bool = False) -> dict:
    """Figures of one export (measured in a fresh process), written to ondevice.json; reused when the export,
    prompts, settings and machine are the same as last time."""
    folder = Path(folder)
    key = _key(folder, prompts, max_new_tokens, threads)
    out_file = folder / RESULT
    if not force and out_file.is_file():
        old = json.loads(out_file.read_text(encoding="utf-8"))
        if old.get("key") == key:
            return old
    with tempfile.TemporaryDirectory(prefix="assay-ondevice-") as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")
        cmd = [sys.executable, "-m", "assay.evals.ondevice", str(folder), str(prompts_file),
               "--max-new-tokens", str(max_new_tokens)] + (["--threads", str(threads)] if threads else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise OndeviceError(f"measuring {folder} failed (exit {proc.returncode}):\n{tail}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures.update(size_mb=round(size_on_disk(folder) / 1e6, 1), key=key, machine=_machine(),
                   measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    tmp_file = folder / f".{RESULT}.{os.getpid()}.tmp"
    tmp_file.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    os.replace(tmp_file, out_file)
    return figures


def measure_model(model_folder: Path, prompts: list[list[dict]], *, max_new_tokens: int = 32,
                  threads: int | None = None, progress: Callable[[str, int | None], Callable[[int], None]] | None = None
                  ) -> dict[str, dict]:
    """Every good export of a model version, format -> figures."""
    found = {}
    for folder in export_folders(Path(model_folder)):
        advance = progress(f"on-device {folder.name}", None) if progress else (lambda _n=1: None)
        found[folder.name] = measure_export(folder, prompts, max_new_tokens=max_new_tokens, threads=threads)
        advance(len(prompts))
    return found


def measure_candidate(candidate, suite, examples, instruction: str, *, progress=None) -> dict[str, dict]:
    """What `assay eval` calls: the suite's first `ondevice.prompts` student prompts on each export."""
    from assay.evals.predict import student_messages

    prompts = [student_messages(suite, ex, instruction) for ex in examples[: suite.ondevice.prompts]]
    return measure_model(Path(candidate.path), prompts, max_new_tokens=suite.ondevice.max_new_tokens,
                         progress=progress)


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


# ---------------------------------------------------------------- the measuring process

def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def _peak_mb() -> float:
    """Peak RSS of this process. On Linux, VmHWM: ru_maxrss survives execve, so a child started by a 2 GB
    parent (pytest, `assay eval` with models loaded) reported at least 2 GB whatever it measured."""
    status = Path("/proc/self/status")
    if status.is_file():
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:"))
        return int(line.split()[1]) / 1e3  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # no /proc (macOS): ru_maxrss, in bytes there


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def run(folder: Path, prompts: list[list[dict]], max_new_tokens: int, threads: int | None) -> dict:
    """Load the export, one warm-up, then per prompt: time to first token and a fixed-length greedy generation."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from assay.training.export import load_export

    runtime_mb = _rss_mb()  # Python, torch and the export code, before any weight is read
    started = time.perf_counter()
    runner, tokenizer = load_export(folder)
    load_s = time.perf_counter() - started
    ids = [tokenizer(tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"] for m in prompts]
    runner.generate(ids[0], 2, set())  # first-call set-up (graph init, allocator) is not a user's latency
    ttft, latency, tokens = [], [], 0
    for prompt in ids:
        t0 = time.perf_counter()
        runner.generate(prompt, 1, set())
        ttft.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        new = runner.generate(prompt, max_new_tokens, set())
        latency.append(time.perf_counter() - t0)
        tokens += len(new)
    return {
        "latency_p50_ms": round(_percentile(latency, 50) * 1e3, 1),
        "latency_p95_ms": round(_percentile(latency, 95) * 1e3, 1),
        "latency_ms": [round(t * 1e3, 1) for t in latency],  # every example, for the report's distribution
        "ttft_ms": round(_percentile(ttft, 50) * 1e3, 1),
        "ttft_p95_ms": round(_percentile(ttft, 95) * 1e3, 1),
        "tokens_per_s": round(tokens / sum(latency), 1),
        "peak_memory_mb": round(_peak_mb(), 1),
        "runtime_memory_mb": round(runtime_mb, 1),
        "load_s": round(load_s, 2),
        "prompts": len(ids),
        "prompt_tokens_mean": round(sum(map(len, ids)) / len(ids), 1),
        "max_new_tokens": max_new_tokens,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="measure one export (run by evals.ondevice.measure_export)")
    parser.add_argument("folder", type=Path)
    parser.add_argument("prompts", type=Path, help="JSON list of chat message lists")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    print(json.dumps(run(args.folder, prompts, args.max_new_tokens, args.threads)))


if __name__ == "__main__":
    main()
