"""`assay init [DIR]`: a starter pipeline next to a user's export, with the configs it names.

The files come from assay/starter/ (package data) and carry comments on what to change; the training config
is a copy of the shipped training/configs/sft-smollm2.yaml, so every setting can be edited in place.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

from assay.errors import AssayError
from assay.shipped import shipped

STARTER = ("pipeline.yaml", "curate.yaml", "synth.yaml", "train.yaml", "gate.yaml")
# an export is what `assay curate` reads (curation.ingest.EXTENSIONS); a Markdown folder is named with --export
EXPORT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".enex")


def init(folder: Path, export: Path | None = None, *, force: bool = False) -> tuple[list[Path], str]:
    """Write the starter files into `folder`; (the files written, the export the pipeline reads)."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise AssayError(f"{folder}: not a folder")
    source = _source(folder, export)
    clash = [name for name in STARTER if (folder / name).exists()]
    if clash and not force:
        raise AssayError(f"{folder}: {', '.join(clash)} already there; nothing written (--force overwrites them)")
    folder.mkdir(parents=True, exist_ok=True)
    quoted = json.dumps(source)  # a valid YAML scalar whatever the file name holds
    written = []
    for name in STARTER:
        if name == "train.yaml":
            text = _train_config()
        else:
            text = files("assay").joinpath("starter", name).read_text(encoding="utf-8")
            text = text.replace("source: {source}", f"source: {quoted}").replace("{source}", source)
        target = folder / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        written.append(target)
    return written, source


def _source(folder: Path, export: Path | None) -> str:
    """The export the pipeline names: --export (relative to the folder when inside it), else the one export
    file in the folder."""
    if export is not None:
        path = export.expanduser().resolve()
        if not path.exists():
            raise AssayError(f"{export}: no such export file or folder")
        return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)
    found = sorted(p.name for p in folder.glob("*") if p.is_file() and p.suffix.lower() in EXPORT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    if not found:
        raise AssayError(f"{folder}: no export here ({', '.join(EXPORT_SUFFIXES)}); name yours with "
                         "--export FILE (or a Markdown folder)")
    raise AssayError(f"{folder}: several possible exports ({', '.join(found)}); name one with --export FILE")


def _train_config() -> str:
    text = shipped("training/configs/sft-smollm2.yaml").read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    return ("# assay train train.yaml [key=value ...] [--resume]   (written by `assay init`: a copy of the shipped\n"
            "# training/configs/sft-smollm2.yaml, the measured defaults; edit in place)\n" + rest)
