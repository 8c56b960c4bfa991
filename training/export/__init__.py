"""`assay export MODEL@VERSION --format merged|int8|onnx|gguf`: ship a trained model, with evidence.

The recipe, top to bottom (`export_model`):
  1. resolve the version folder and load the reference: base + LoRA adapter, merged in fp32
  2. measure the reference on the probe (prompts' greedy continuations and logits, perplexity)
  3. write the format into a temp folder, load it back from disk, measure it the same way
  4. judge the figures against the format's tolerances, write export.json, move the folder into
     models/<name>/<version>/exports/<format>/ and update the model card's "Exports" table
  5. raise ExportParityError (non-zero exit) when a tolerance is broken: the export stays on disk,
     marked "failed", so a person can look at it, and `load_export` refuses it by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from assay.errors import AssayError, NotFoundError
from assay.training.export import gguf, int8, merged, onnx

# name -> module with write(source, out, section) -> details, load(path) -> Runner, and optionally
# check(path, tokenizer, texts) -> (figures, failures)
FORMATS: dict[str, ModuleType] = {"merged": merged, "int8": int8, "onnx": onnx, "gguf": gguf}

RESULT_FILE = "export.json"


class ExportError(AssayError):
    """A model that cannot be exported here (nothing to export, a converter that fails)."""


class ExportParityError(ExportError):
    """The export was written but breaks its tolerances; `result` holds every figure."""

    exit_code = 3

    def __init__(self, result: "ExportResult"):
        self.result = result
        super().__init__(f"{result.model} {result.format} export FAILED parity: {'; '.join(result.failures)}\n"
                         + "\n".join("  " + line for line in summary_lines(result)))


@dataclass
class ExportResult:
    model: str  # name@version
    format: str
    status: str  # "ok" or "failed"
    path: Path
    size_bytes: int
    files: dict[str, int]
    parity: dict[str, Any]
    tolerance: dict[str, Any]
    failures: list[str]
    reference: str
    seconds: dict[str, float]  # export (writing the files), load (back from disk), parity (measuring)
    details: dict[str, Any]
    libraries: dict[str, str]
    created_at: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "path": str(self.path)}


def export_model(ref: str, fmt: str, *, project=None, config: str | Path | None = None,
                 overrides: list[str] | None = None, log: Callable[[str], None] | None = None) -> ExportResult:
    """Export `ref` (name@vX.Y.Z, a name for its latest version, or a version folder) in format `fmt`.

    Returns the result of a good export; raises ExportParityError (exit 3) after writing a failed one.
    """
    from assay.training.export.recipe import run

    if fmt not in FORMATS:
        raise NotFoundError("export format", fmt, list(FORMATS))
    return run(ref, fmt, project=project, config=config, overrides=overrides, log=log or (lambda _: None))


def load_export(path: str | Path, *, allow_failed: bool = False):
    """(runner, tokenizer) of an export folder; runner.generate/logits work the same for every format."""
    from assay.training.export.recipe import load

    return load(Path(path), allow_failed=allow_failed)


def summary_lines(result: ExportResult) -> list[str]:
    """What the CLI prints for one export."""
    from assay.training.export.card import human_size

    p = result.parity
    lines = [
        f"{result.format}: {result.status.upper()}  {result.path}",
        f"size {human_size(result.size_bytes)}; export {result.seconds.get('export', 0):.1f} s, "
        f"parity {result.seconds.get('parity', 0):.1f} s",
    ]
    if "max_abs_logit_diff" in p:
        lines += [
            f"vs {result.reference}: max abs logit diff {p['max_abs_logit_diff']:.3g}, "
            f"greedy agreement {p['greedy_agreement']:.3f} (exact on {p['greedy_exact']:.0%} of prompts), "
            f"perplexity {p['perplexity_reference']:.3f} -> {p['perplexity']:.3f} ({p['perplexity_change']:+.2%})",
            f"greedy decoding {p['tokens_per_s']:.1f} tokens/s (reference {p['reference_tokens_per_s']:.1f})",
        ]
    lines += [f"FAILED: {f}" for f in result.failures]
    return lines


__all__ = ["FORMATS", "ExportError", "ExportParityError", "ExportResult", "export_model", "load_export",
           "summary_lines"]
