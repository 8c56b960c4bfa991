"""`gguf`: one file for llama.cpp-style runtimes (llama.cpp, llama-cpp-python, Ollama, LM Studio).

The `gguf` package writes the format but has no Hugging Face converter; llama.cpp's own
`convert_hf_to_gguf.py` (with its `conversion/` package and `gguf-py`) ships inside the
llama-cpp-python source distribution on PyPI. It is fetched once with pip, unpacked under
$ASSAY_CACHE/tools/, and run as a subprocess on the merged fp32 folder. Parity loads the GGUF
back through transformers (`gguf_file=`), which dequantizes it to fp32 torch tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.fetch import pip_download
from assay.training.export.parity import TorchRunner

SDIST_ENV = "ASSAY_LLAMA_CPP_SDIST"  # a local llama-cpp-python .tar.gz, for machines without PyPI
MARKER = ".assay-complete.json"
# what the converter needs from the sdist, relative to vendor/llama.cpp/
KEEP = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/")


class ConverterError(AssayError):
    """llama.cpp's converter could not be fetched or failed on this model."""


def tools_root() -> Path:
    from assay.models import cache_root

    return cache_root().parent / "tools"


def converter_dir(requirement: str) -> Path:
    """The unpacked converter for `llama-cpp-python==X`, fetched and cached on first use."""
    version = requirement.split("==", 1)[1]
    dest = tools_root() / f"llama-cpp-python-{version}"
    if (dest / MARKER).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=dest.parent) as work:
        sdist = pip_download(requirement, Path(work) / "sdist", env=SDIST_ENV, error=ConverterError, source=True)
        staging = Path(work) / "tool"
        digest = _unpack(sdist, staging)
        if not (staging / "convert_hf_to_gguf.py").is_file():
            raise ConverterError(f"{sdist.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
        (staging / MARKER).write_text(json.dumps({"requirement": requirement, "sdist": sdist.name,
                                                  "sha256": digest}, indent=2), encoding="utf-8")
        if (dest / MARKER).is_file():
            return dest  # a concurrent export unpacked it first
        if dest.exists():
            shutil.rmtree(dest)  # a half-finished unpack
        os.replace(staging, dest)
    return dest


def _unpack(sdist: Path, out: Path) -> str:
    """Copy the converter's files out of the sdist (by name, never trusting member paths); return its sha256."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            _, sep, rel = member.name.partition("/vendor/llama.cpp/")
            if not sep or not member.isfile() or ".." in Path(rel).parts:
                continue
            if rel in KEEP or rel.startswith(tuple(k for k in KEEP if k.endswith("/"))):
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return digest


def write(source, out: Path, section) -> dict[str, Any]:
    tool = converter_dir(section.converter)
    hf = out / ".merged-hf"  # the converter reads a Hugging Face folder
    source.save_hf(hf)
    target = out / f"model-{section.outtype}.gguf"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tool / "gguf-py"), str(tool)])}
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not the installed gguf
    try:
        result = subprocess.run([sys.executable, str(tool / "convert_hf_to_gguf.py"), str(hf), "--outtype",
                                 section.outtype, "--outfile", str(target)], capture_output=True, text=True, env=env)
    finally:
        shutil.rmtree(hf, ignore_errors=True)
    if result.returncode != 0 or not target.is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise ConverterError(f"convert_hf_to_gguf.py ({section.converter}) failed with exit "
                             f"{result.returncode}:\n{tail}")
    return {"variant": section.outtype, "outtype": section.outtype, "file": target.name, "converter": section.converter,
            "runtime": "llama.cpp and compatible (parity: transformers gguf_file=, dequantized)",
            "speed_note": "tokens/s measured on the GGUF dequantized to fp32 torch, not in a llama.cpp runtime"}


def gguf_file(path: Path) -> Path:
    found = sorted(Path(path).glob("*.gguf"))
    if len(found) != 1:
        raise ConverterError(f"{path} should hold exactly one .gguf file, found {[f.name for f in found]}")
    return found[0]


def load_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    file = gguf_file(path)
    return AutoModelForCausalLM.from_pretrained(
        file.parent, gguf_file=file.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True)).eval()


def load(path: Path) -> TorchRunner:
    return TorchRunner(load_model(path))


def check(path: Path, tokenizer, texts: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The tokenizer embedded in the GGUF must encode the probe exactly like the model's own."""
    from transformers import AutoTokenizer

    file = gguf_file(path)
    embedded = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    same = [embedded(t, add_special_tokens=False)["input_ids"] == tokenizer(t, add_special_tokens=False)["input_ids"]
            for t in texts]
    share = sum(same) / len(same)
    failures = [] if share == 1 else [f"the GGUF's tokenizer encodes {len(same) - sum(same)} of {len(same)} "
                                      "probe texts differently from the model's tokenizer"]
    return {"tokenizer_match": share}, failures
