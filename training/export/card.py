"""The "Exports" section of a model card (models/<name>/<version>/README.md), rebuilt from export.json files.

The section sits between two HTML comments, so re-exporting replaces it and leaves the rest of
the card (written by the training recipe) untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BEGIN = "<!-- assay:exports -->"
END = "<!-- /assay:exports -->"


def update_card(folder: Path) -> None:
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {folder.parent.name} {folder.name}\n"
    section = render(_exports(folder))
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = card.with_name(f".{card.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, card)


def _exports(folder: Path) -> list[dict[str, Any]]:
    found = []
    for info in sorted((folder / "exports").glob("*/export.json")):
        if not info.parent.name.startswith("."):
            found.append(json.loads(info.read_text(encoding="utf-8")))
    return found


def render(exports: list[dict[str, Any]]) -> str:
    lines = [BEGIN, "## Exports", ""]
    if not exports:
        lines += ["None yet: `assay export NAME@VERSION --format merged|int8|onnx|gguf`.", END]
        return "\n".join(lines)
    lines += [
        "Each export is loaded back from disk and compared with its reference on the same prompts and text; "
        "a broken tolerance marks it FAILED. Figures and tolerances are in `exports/<format>/export.json`.",
        "",
        "| format | status | size | max abs logit diff | greedy agreement | perplexity (ref -> export) "
        "| tokens/s (export / ref) | export time | reference |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in exports:
        p, tol = e["parity"], e["tolerance"]
        lines.append(
            f"| {e['format']}{_variant(e)} | {e['status'].upper()} | {human_size(e['size_bytes'])} "
            f"| {p['max_abs_logit_diff']:.3g}{_limit('<=', tol.get('max_abs_logit_diff'))} "
            f"| {p['greedy_agreement']:.3f}{_limit('>=', tol.get('min_greedy_agreement'))} "
            f"| {p['perplexity_reference']:.2f} -> {p['perplexity']:.2f} ({p['perplexity_change']:+.2%})"
            f"{_limit('<=', tol.get('max_perplexity_change'), pct=True)} "
            f"| {_speed(e)} "
            f"| {e['seconds']['export']:.1f} s | {e['reference']} |")
    failed = [e for e in exports if e["failures"]]
    if failed:
        lines.append("")
        lines += [f"- {e['format']} FAILED: {'; '.join(e['failures'])}" for e in failed]
    lines.append(END)
    return "\n".join(lines)


def _variant(export: dict[str, Any]) -> str:
    variant = export["details"].get("variant")
    return f" ({variant})" if variant else ""


def _speed(export: dict[str, Any]) -> str:
    p = export["parity"]
    if export["details"].get("speed_note"):  # e.g. a GGUF measured after dequantizing, not in its runtime
        return "n/a"
    return f"{p['tokens_per_s']:.1f} / {p['reference_tokens_per_s']:.1f}"


def _limit(op: str, value: float | None, pct: bool = False) -> str:
    if value is None:
        return ""
    return f" (tol {op} {'+' if pct else ''}{value:.1%})" if pct else f" (tol {op} {value:g})"


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"
