"""The export recipe behind `training.export.export_model`, and loading an export back."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from assay.config import load_config
from assay.errors import AssayError
from assay.project import Project
from assay.training.common import library_versions
from assay.training.export import FORMATS, RESULT_FILE, ExportError, ExportParityError, ExportResult, parity
from assay.training.export.card import update_card
from assay.training.export.config import ExportConfig

LIBRARIES = ("torch", "transformers", "peft", "safetensors", "onnx", "onnxscript", "onnxruntime", "gguf")


@dataclass
class Source:
    """The model to export: merged fp32 weights in memory, and the tokenizer it was trained with."""

    model: Any
    tokenizer: Any
    base: str

    def save_hf(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def run(ref: str, fmt: str, *, project: Project | None, config, overrides, log: Callable[[str], None]) -> ExportResult:
    cfg = load_config(ExportConfig, config, overrides)  # every config problem before any model loads
    section = getattr(cfg, fmt)
    module = FORMATS[fmt]
    folder, label = resolve(project or Project.current(), ref)

    # 1. the reference: for `merged` the adapter applied unmerged (what the merge must reproduce),
    #    for every other format the merged fp32 model (what the conversion must reproduce)
    log(f"loading {label} in fp32")
    source, unmerged = load_source(folder, keep_unmerged=fmt == "merged")
    tokenizer = source.tokenizer
    probe = parity.make_probe(tokenizer, cfg.parity)
    reference_name = "base + adapter (PEFT, unmerged, fp32)" if unmerged is not None else "merged fp32 (torch)"
    log(f"measuring the reference: {reference_name}")
    started = time.perf_counter()
    reference = parity.reference(parity.TorchRunner(unmerged if unmerged is not None else source.model), probe)
    reference_s = time.perf_counter() - started
    del unmerged

    exports = folder / "exports"
    exports.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{fmt}-", dir=exports))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the export from other users of the project
    try:
        # 2. write the format, then load it back from disk: parity is measured on what ships
        log(f"writing {fmt}")
        started = time.perf_counter()
        details = _guard(f"writing the {fmt} export of {label}", lambda: module.write(source, tmp, section))
        export_s = time.perf_counter() - started
        source = None  # free the fp32 weights before loading the export
        log(f"loading the {fmt} export back and measuring parity")
        started = time.perf_counter()
        runner = _guard(f"loading the {fmt} export of {label} back", lambda: module.load(tmp))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        figures = _guard(f"running the {fmt} export of {label}", lambda: parity.compare(runner, reference, probe))
        runner = None
        failures = parity.judge(figures, section.tolerance)
        if hasattr(module, "check"):
            extra, extra_failures = module.check(tmp, tokenizer, probe.texts)
            figures.update(extra)
            failures += extra_failures
        parity_s = time.perf_counter() - started

        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        result = ExportResult(
            model=label, format=fmt, status="failed" if failures else "ok", path=exports / fmt,
            size_bytes=sum(files.values()), files=files, parity=figures,
            tolerance=section.tolerance.model_dump(), failures=failures, reference=reference_name,
            seconds={"export": round(export_s, 2), "load": round(load_s, 2), "parity": round(parity_s, 2),
                     "reference": round(reference_s, 2)},
            details=details, libraries=library_versions(LIBRARIES),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (tmp / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=2, default=str), encoding="utf-8")
        _install(tmp, exports / fmt, exports, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        raise ExportParityError(result)
    return result


def _guard(stage: str, step: Callable[[], Any]) -> Any:
    """Run one stage; an exporter's or runtime's own exception becomes an ExportError naming the stage."""
    try:
        return step()
    except AssayError:
        raise
    except Exception as exc:  # the cause stays chained for --debug
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"{stage} failed: {type(exc).__name__}: {first}") from exc


def resolve(project: Project, ref: str) -> tuple[Path, str]:
    """The version folder and its label: a registered name[@version], or a path to a version folder."""
    from assay import registry

    path = Path(ref).expanduser()
    if path.is_dir() and (os.sep in ref or ref.startswith(".")):
        path = path.resolve()
        return path, f"{path.parent.name}@{path.name}"
    version = registry.get(project, ref)
    return version.path, version.ref


def load_source(folder: Path, *, keep_unmerged: bool) -> tuple[Source, Any]:
    """(merged source, unmerged PEFT model or None) from a version folder's adapter/ or model/."""
    import torch

    from assay.models import load_causal_lm

    adapter, full = folder / "adapter", folder / "model"
    if (adapter / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoTokenizer

        base = base_model_of(folder)
        model, tokenizer = load_causal_lm(base, dtype=torch.float32)
        if (adapter / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(adapter, local_files_only=True)
        peft_model = PeftModel.from_pretrained(model, adapter, is_trainable=False).eval()
        unmerged = copy.deepcopy(peft_model) if keep_unmerged else None
        return Source(peft_model.merge_and_unload().eval(), tokenizer, base), unmerged
    if (full / "config.json").is_file():  # lora.enabled: false trains every weight; nothing to merge
        model, tokenizer = load_causal_lm(str(full), dtype=torch.float32)
        return Source(model, tokenizer, str(full)), (copy.deepcopy(model) if keep_unmerged else None)
    raise ExportError(f"{folder} holds neither adapter/adapter_config.json (a LoRA run) nor model/config.json "
                      "(a full fine-tune); is it a model version folder?")


def base_model_of(folder: Path) -> str:
    """The base an adapter was trained on: run.json's catalogue name (portable), else adapter_config's path."""
    run_info = folder / "run.json"
    if run_info.is_file():
        base = json.loads(run_info.read_text(encoding="utf-8")).get("base_model")
        if base:
            return base
    config = json.loads((folder / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ExportError(f"{folder}: neither run.json nor adapter/adapter_config.json names the base model")
    return base


def _install(tmp: Path, target: Path, exports: Path, folder: Path) -> None:
    """Swap the new export in for the old one and refresh the card, under a lock (exports may run side by side)."""
    with open(exports / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = None
        if target.exists():
            old = exports / f".old-{target.name}-{os.getpid()}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        update_card(folder)


def load(path: Path, *, allow_failed: bool):
    """(runner, tokenizer) for an export folder written by `run`."""
    from transformers import AutoTokenizer

    info_file = path / RESULT_FILE
    if not info_file.is_file():
        raise ExportError(f"{path} has no {RESULT_FILE}; it was not written by assay export")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    if info["status"] != "ok" and not allow_failed:
        raise ExportError(f"{path} is a FAILED {info['format']} export ({'; '.join(info['failures'])}); "
                          "pass allow_failed=True to load it anyway")
    runner = FORMATS[info["format"]].load(path)
    if info["format"] == "gguf":
        from assay.training.export.gguf import gguf_file

        file = gguf_file(path)
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return runner, tokenizer

