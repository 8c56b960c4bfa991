"""`assay export` against the real SmolLM2-135M-Instruct and a real LoRA adapter: no mocks of our code.

The adapter is trained here (a few AdamW steps on real sentences) so merging changes the model,
then registered as models/notes-student/v1.0.0 the way the training recipes register a version.
Each format is written, loaded back from disk and held to its tolerances; int8 on every Linear
layer is the honest failure case (it breaks SmolLM2's perplexity, and the export must say so).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assay.errors import ConfigError, NotFoundError
from assay.project import Project
from assay.training.export import ExportError, ExportParityError, export_model, load_export

REPO = Path(__file__).resolve().parent.parent
BASE = "smollm2-135m-instruct"
SENTENCES = [
    "Meeting notes, Monday: the team agreed to ship the release on Friday. Dana writes the summary.",
    "Grocery list for the weekend: eggs, oat milk, two lemons, coffee beans and a loaf of rye bread.",
    "Reminder: call the dentist on Tuesday morning to move the appointment to the following week.",
    "Book notes: the second chapter argues that small daily habits matter more than rare big efforts.",
]
CARD = "# notes-student v1.0.0\n\n- recipe: sft\n- base model: smollm2-135m-instruct\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch (and onnxruntime) thread: on a 2-core box shared with other jobs, two threads spin
    against each other and the file takes ~15 min instead of ~3.5 (measured at load average 5)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_adapter(folder: Path) -> None:
    """A rank-4 LoRA on every Linear, a few steps of next-token loss, saved as the sft recipe saves it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from assay.models import load_causal_lm

    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(BASE, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                                             task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for sentence in SENTENCES * 1:
        ids = tokenizer(sentence, return_tensors="pt").input_ids
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder / "adapter")
    tokenizer.save_pretrained(folder / "adapter")


@pytest.fixture(scope="module")
def project(tmp_path_factory, assay_cache) -> Project:
    from assay import registry

    project = Project(tmp_path_factory.mktemp("export-proj"))

    def fill(folder: Path, version: str, parent: str | None) -> None:
        train_adapter(folder)
        (folder / "run.json").write_text(json.dumps({"name": "notes-student", "version": version,
                                                     "base_model": BASE}), encoding="utf-8")
        (folder / "README.md").write_text(CARD, encoding="utf-8")

    registry.register(project, "notes-student", fill, recipe="sft", base_model=BASE, architecture="llama:test",
                      dataset="notes@v1", dataset_hash="test", teachers=[], metrics={}, config={},
                      wall_time_s=1.0, device="cpu", cost_usd=0.0)
    return project


REF = "notes-student@v1.0.0"


@pytest.fixture(scope="module")
def exported(project):
    """The default-recipe export of a format, made once by whichever test asks for it first."""
    done = {}

    def get(fmt: str):
        if fmt not in done:
            done[fmt] = export_model(REF, fmt, project=project)
        return done[fmt]

    return get


def assert_meets(result) -> None:
    tol, p = result.tolerance, result.parity
    assert result.ok and result.failures == []
    if tol["max_abs_logit_diff"] is not None:
        assert p["max_abs_logit_diff"] <= tol["max_abs_logit_diff"]
    if tol["min_greedy_agreement"] is not None:
        assert p["greedy_agreement"] >= tol["min_greedy_agreement"]
    if tol["max_perplexity_change"] is not None:
        assert p["perplexity_change"] <= tol["max_perplexity_change"]
    recorded = json.loads((result.path / "export.json").read_text(encoding="utf-8"))
    assert recorded["status"] == "ok" and recorded["parity"] == pytest.approx(p)
    assert recorded["size_bytes"] == sum(f.stat().st_size for f in result.path.rglob("*")
                                         if f.is_file() and f.name != "export.json")


def greedy(runner, tokenizer, prompt: str, n: int = 8) -> str:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        tokenize=False)
    ids = tokenizer(ids, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(runner.generate(ids, n, {tokenizer.eos_token_id}), skip_special_tokens=True)


# ---------------------------------------------------------------- refused before any model loads

def test_unknown_format_suggests(project):
    with pytest.raises(NotFoundError, match="Did you mean 'onnx'"):
        export_model(REF, "onx", project=project)


def test_bad_override_is_a_config_error(project):
    with pytest.raises(ConfigError, match="int8.tolerance.max_perplexity_change"):
        export_model(REF, "int8", project=project, overrides=["int8.tolerance.max_perplexity_change=-1"])


def test_unknown_model_version(project):
    with pytest.raises(NotFoundError, match="v1.0.0"):
        export_model("notes-student@v9.0.0", "merged", project=project)


def test_folder_without_weights(tmp_path, assay_cache):
    (tmp_path / "m" / "v1.0.0").mkdir(parents=True)
    with pytest.raises(ExportError, match="neither adapter"):
        export_model(str(tmp_path / "m" / "v1.0.0"), "merged")


def test_converter_unpacks_only_its_files(tmp_path, monkeypatch):
    """The llama.cpp converter comes out of a source tarball: only its files, never a path outside."""
    import io
    import tarfile

    from assay.training.export.gguf import SDIST_ENV, ConverterError, converter_dir

    sdist = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in ["convert_hf_to_gguf.py", "conversion/__init__.py", "gguf-py/gguf/__init__.py",
                     "ggml/src/ggml.c", "../../escape.py"]:
            data = b"# " + name.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-9.9.9/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("ASSAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(SDIST_ENV, str(sdist))
    tool = converter_dir("llama-cpp-python==9.9.9")
    files = sorted(str(p.relative_to(tool)) for p in tool.rglob("*") if p.is_file())
    assert files == [".assay-complete.json", "conversion/__init__.py", "convert_hf_to_gguf.py",
                     "gguf-py/gguf/__init__.py"]
    assert not list(tmp_path.rglob("escape.py"))
    assert converter_dir("llama-cpp-python==9.9.9") == tool  # cached: the tarball is not read again
    monkeypatch.setenv(SDIST_ENV, str(tmp_path / "missing.tar.gz"))
    with pytest.raises(ConverterError, match="is not a file"):
        converter_dir("llama-cpp-python==9.9.8")


# ---------------------------------------------------------------- the formats

def test_merged(exported):
    result = exported("merged")
    assert_meets(result)
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(result.files)
    # the adapter changed the model: the merged weights are not the base's
    import torch
    from transformers import AutoModelForCausalLM

    from assay.models import model_path

    merged = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(model_path(BASE), dtype=torch.float32)
    name = "model.layers.0.self_attn.q_proj.weight"
    moved = (merged.state_dict()[name] - base.state_dict()[name]).abs().max().item()
    assert moved > 1e-4
    runner, tokenizer = load_export(result.path)
    assert greedy(runner, tokenizer, "What is the capital of France?").strip()


def test_int8_passes_and_every_linear_fails(exported, project):
    result = exported("int8")
    assert_meets(result)
    assert result.details["smoothed_groups"] > 0
    assert result.details["kept_fp32"] and all(n.endswith(("mlp.down_proj", "lm_head"))
                                               for n in result.details["kept_fp32"])
    runner, tokenizer = load_export(result.path)
    assert greedy(runner, tokenizer, "What is the capital of France?").strip()
    good_size = result.size_bytes

    # every Linear in int8 (down_proj and lm_head too): smaller, and broken; the export must say so
    with pytest.raises(ExportParityError) as failed:
        export_model(REF, "int8", project=project, overrides=["int8.skip_modules=[]"])
    bad = failed.value.result
    assert bad.status == "failed" and any("perplexity change" in f for f in bad.failures)
    assert bad.parity["perplexity_change"] > bad.tolerance["max_perplexity_change"]
    assert bad.size_bytes < good_size
    assert "FAILED" in str(failed.value) and f"{bad.parity['perplexity']:.3f}" in str(failed.value)
    assert json.loads((bad.path / "export.json").read_text(encoding="utf-8"))["status"] == "failed"
    with pytest.raises(ExportError, match="FAILED int8 export"):
        load_export(bad.path)
    card = (bad.path.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "| int8 (every Linear; smooth 0.7) | FAILED |" in card and "int8 FAILED: perplexity change" in card

    # exporting again with the default recipe replaces the failed export
    assert_meets(export_model(REF, "int8", project=project))


def test_onnx_with_kv_cache(exported):
    result = exported("onnx")
    assert_meets(result)
    assert {"model.onnx", "model.onnx.data", "tokenizer.json"} <= set(result.files)
    assert result.parity["greedy_exact"] == 1.0  # fp32 graph: the same greedy text as torch
    runner, tokenizer = load_export(result.path)
    # the cached decode gives the logits of a full forward pass
    ids = tokenizer("Notes from the Monday meeting", add_special_tokens=False)["input_ids"]
    full = runner.logits(ids)
    new = runner.generate(ids, 3, set())
    again = runner.logits(ids + new[:2])
    assert [int(again[len(ids) - 1 + i].argmax()) for i in range(3)] == new
    assert np.abs(again[: len(ids)] - full).max() < 1e-3


def test_gguf(exported):
    import gguf as gguf_package

    result = exported("gguf")
    assert_meets(result)
    assert result.parity["tokenizer_match"] == 1.0
    reader = gguf_package.GGUFReader(result.path / "model-f16.gguf")
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    runner, tokenizer = load_export(result.path)
    assert greedy(runner, tokenizer, "What is the capital of France?").strip()


def test_card_lists_every_export(exported, project):
    for fmt in ("merged", "int8", "onnx", "gguf"):
        exported(fmt)  # made by the tests above when the module runs whole
    card = (project.models / "notes-student" / "v1.0.0" / "README.md").read_text(encoding="utf-8")
    assert card.startswith(CARD.rstrip("\n"))  # the training recipe's card is kept
    assert card.count("<!-- assay:exports -->") == 1
    for fmt in ("merged", "int8 (fp32: mlp.down_proj, lm_head; smooth 0.7)", "onnx", "gguf (f16)"):
        assert f"| {fmt} | OK |" in card
