"""Training recipes against the real SmolLM2-135M-Instruct and real note summaries: no mocks of our code.

The data is the shipped sample's gold set (30 hand-written notes with human summaries) written
through DatasetStore, so the recipes read a real dataset version. Runs are tiny (96-token examples,
batch 2, 4 steps, LoRA rank 4 on q/v, 2 validation rows) to keep the file within a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from assay.errors import ConfigError, InputError
from assay.project import Project
from assay.records import notes_frame
from assay.store import DatasetStore

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample"
CONFIGS = REPO / "training" / "configs"
SFT_YAML = CONFIGS / "sft-smollm2.yaml"
DISTILL_YAML = CONFIGS / "distill-smollm2.yaml"
# a tiny but complete run: evaluation (loss + ROUGE-L), checkpoints, best-checkpoint choice
TINY = ["data.max_seq_length=96", "data.min_train_examples=4", "lora.rank=4", "lora.alpha=8",
        "lora.target_modules=[q_proj,v_proj]",
        "train.max_steps=4", "train.batch_size=2", "train.learning_rate=1e-3", "train.warmup_ratio=0",
        "train.save_steps=2", "eval.every_steps=2", "eval.generate_examples=1", "eval.max_new_tokens=8",
        "output.name=tiny"]


# ---------------------------------------------------------------- fixtures

def summary_rows() -> list[dict]:
    notes = {n["id"]: n for n in json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))}
    gold = [json.loads(line) for line in (SAMPLE / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [{"note_id": g["note_id"], "title": notes[g["note_id"]]["title"], "text": notes[g["note_id"]]["content"],
             "task": "summarize", "input": notes[g["note_id"]]["content"], "output": g["summary"],
             "origin": "human"} for g in gold]


def write_notes(root: Path, rows: list[dict] | None = None, name: str = "notes"):
    rows = summary_rows() if rows is None else rows
    df = notes_frame(rows).with_columns(
        pl.Series("split", ["validation" if i % 15 == 14 else "train" for i in range(len(rows))]))
    return DatasetStore(root / "datasets").write(name, df, step="test", config={})


@pytest.fixture(scope="module")
def project(tmp_path_factory, assay_cache) -> Project:
    root = tmp_path_factory.mktemp("proj")
    write_notes(root)
    return Project(root)


@pytest.fixture(scope="module")
def tokenizer(assay_cache):
    from transformers import AutoTokenizer

    from assay.models import model_path

    return AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"), local_files_only=True)


# ---------------------------------------------------------------- configs (no model)

def test_every_config_says_how_to_run_it_and_validates(project):
    from assay import training
    found = sorted(CONFIGS.glob("*.yaml"))
    assert len(found) >= 3
    for path in found:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# assay train training/configs/{path.name}"), path
        assert training.load(path, project=project).recipe in ("sft", "distill")


def test_config_reports_every_field_problem_at_once(project):
    from assay import training
    with pytest.raises(ConfigError) as info:
        training.load(SFT_YAML, ["lora.rank=0", "train.batch_size=many", "lora.colour=red"], project=project)
    text = str(info.value)
    assert len(info.value.problems) == 3
    assert "lora.rank" in text and "train.batch_size" in text and "lora.colour: unknown key" in text


def test_config_reports_cross_field_machine_and_data_problems_at_once(project, monkeypatch):
    import torch

    from assay import training
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    overrides = ["eval.every_steps=30", "data.dataset=nots", "model.base=someorg/not-cached-7b"]
    if not torch.cuda.is_available():
        overrides.append("model.quantize=4bit")
    with pytest.raises(ConfigError) as info:
        training.load(SFT_YAML, overrides, project=project)
    text = str(info.value)
    assert "must be a multiple of eval.every_steps" in text
    assert "Did you mean 'notes'" in text
    assert "catalogue models that work offline: smollm2-135m-instruct" in text
    if not torch.cuda.is_available():
        assert "needs a CUDA GPU" in text and "model.quantize=none" in text


def test_distill_config_rules(project):
    from assay import training
    with pytest.raises(ConfigError) as info:
        training.load(DISTILL_YAML, ["lora.enabled=true", "teacher.cache_top_k=8"], project=project)
    assert "set lora.enabled: false" in str(info.value)
    assert "needs data.packing: false" in str(info.value)
    with pytest.raises(ConfigError, match="logit distillation needs a local teacher"):
        training.load(DISTILL_YAML, ["teacher.model=null", "compress.keep_every=null"], project=project)


# ---------------------------------------------------------------- data: template, labels, truncation

def test_examples_use_the_chat_template_and_label_only_the_completion(tokenizer):
    from assay.training.data import IGNORE, encode, to_examples

    rows = summary_rows()[:3]
    examples, dropped = to_examples(notes_frame(rows))
    assert not dropped and len(examples) == 3
    encoded = encode(examples, tokenizer, max_seq_length=2048)
    for row, source in zip(encoded.rows, rows):
        ids, labels = row["input_ids"], row["labels"]
        assert len(ids) == len(labels)
        first = next(i for i, t in enumerate(labels) if t != IGNORE)
        assert all(t == IGNORE for t in labels[:first]) and labels[first:] == ids[first:]
        prompt, completion = tokenizer.decode(ids[:first]), tokenizer.decode(ids[first:])
        assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
        assert "### Response" not in prompt and source["input"].strip()[:40] in prompt
        assert completion == source["output"] + "<|im_end|>\n"  # the model learns to stop
    assert encoded.stats["truncated_input"] == 0


def test_every_example_fits_max_seq_length_and_cuts_are_counted(tokenizer):
    from assay.training.data import IGNORE, encode, to_examples

    rows = summary_rows()[:4]
    rows[0] = {**rows[0], "input": " ".join([rows[0]["input"]] * 40)}  # ~6,000 tokens, the 17.8 GB case
    examples, _ = to_examples(notes_frame(rows))
    encoded = encode(examples, tokenizer, max_seq_length=256)
    assert all(len(r["input_ids"]) <= 256 for r in encoded.rows)
    assert encoded.stats["truncated_input"] >= 1 and encoded.stats["longest_tokens_before_truncation"] > 4000
    completion = [t for t in encoded.rows[0]["labels"] if t != IGNORE]
    assert tokenizer.decode(completion) == rows[0]["output"] + "<|im_end|>\n"  # the note is cut, not the answer
    assert "[...]" in encoded.examples[0].prompt[-1]["content"]  # evaluation sees the prompt it trained on
    # too small a budget for note and answer: half goes to the answer, its cut is counted too
    tight = encode(examples, tokenizer, max_seq_length=112)
    assert all(len(r["input_ids"]) <= 112 for r in tight.rows) and len(tight.rows) == 4
    assert tight.stats["truncated_completion"] >= 1 and tight.stats["truncated_input"] == 4
    # no room for even the chat template's own turns: dropped and counted, never overflowing
    assert encode(examples, tokenizer, max_seq_length=48).stats["dropped_prompt_too_long"] == 4


def test_chat_message_rows_train_on_the_last_assistant_turn(tokenizer):
    from assay.training.data import encode, to_examples

    messages = [{"role": "user", "content": "Title for: allotment plan, beans and leeks"},
                {"role": "assistant", "content": "Allotment plan"}]
    df = notes_frame([{"note_id": "m1", "messages": json.dumps(messages)},
                      {"note_id": "m2", "messages": "not json"},
                      {"note_id": "m3", "output": "x"}])  # no instruction, no known task
    examples, dropped = to_examples(df)
    assert [e.note_id for e in examples] == ["m1"]
    assert dict(dropped) == {"bad_messages_json": 1, "no_instruction": 1}
    row = encode(examples, tokenizer, 256).rows[0]
    assert tokenizer.decode([t for t in row["labels"] if t >= 0]) == "Allotment plan<|im_end|>\n"


def test_tiny_dataset_is_refused_with_counts_before_any_model_loads(tmp_path, assay_cache):
    from assay.training.config import SFTRunConfig
    from assay.training.sft import train

    rows = summary_rows()[:5] + [{"note_id": "x1", "task": "summarize", "input": "text"}]
    write_notes(tmp_path, rows)
    # the base does not exist: reaching the model would fail differently
    cfg = SFTRunConfig.model_validate({"data": {"dataset": "notes"}, "model": {"base": str(tmp_path / "nope")}})
    with pytest.raises(InputError) as info:
        train(cfg, project=Project(tmp_path))
    assert "5 usable train example(s) and 0 validation" in str(info.value) and "1 no_output" in str(info.value)
    assert "at least 8" in str(info.value)


def test_sequence_distillation_needs_teacher_outputs(project):
    from assay import training
    from assay.training.common import TrainingError

    with pytest.raises(TrainingError, match="none of the 28 train rows of notes@v1 names a teacher"):
        training.run(CONFIGS / "distill-sequence.yaml", project=project)


def test_card_names_the_teachers_found_in_the_data():
    from assay.training.runs import _card, teachers_of

    df = notes_frame([{"note_id": "a", "teacher": "openai:gpt-4o-mini"}, {"note_id": "b"},
                      {"note_id": "c", "teacher": "local:smollm2-135m-instruct"},
                      {"note_id": "d", "teacher": "openai:gpt-4o-mini"}])
    teachers = teachers_of(df)
    assert teachers == ["local:smollm2-135m-instruct", "openai:gpt-4o-mini"]
    info = {"name": "m", "version": "v1.0.0", "recipe": "distill-sequence", "base_model": "b", "architecture": "a",
            "dataset": "notes@v2", "dataset_hash": "sha256:x", "teachers": teachers, "parent": None,
            "device": "cpu", "wall_time_s": 3600.0, "cost_usd": 1.2, "hourly_rate_usd": 1.2, "seed": 1,
            "libraries": {"torch": "2"}, "metrics": {"eval_loss": 1.5}, "data": {"train_examples": 3}}
    card = _card(info, [])
    assert "teachers in the training data: local:smollm2-135m-instruct, openai:gpt-4o-mini" in card
    assert "estimated cost $1.2000 at $1.2/h" in card and "notes@v2 (content sha256:x)" in card


# ---------------------------------------------------------------- metrics, errors, registry (no model)

def test_out_of_memory_names_the_knobs():
    from assay.training.common import is_oom, oom_error
    from assay.training.config import SFTRunConfig

    cfg = SFTRunConfig.model_validate({"data": {"dataset": "notes", "max_seq_length": 1024}})
    exc = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    assert is_oom(exc)
    text = str(oom_error(exc, cfg))
    assert "train.batch_size=4 train.gradient_accumulation=2" in text
    assert "data.max_seq_length=512" in text and "model.gradient_checkpointing=true" in text


def test_semantic_versions():
    from assay.registry import ModelVersion, next_version

    assert next_version(None, base_model="b", architecture="a", dataset="d@v1", dataset_hash="h") == "v1.0.0"
    parent = ModelVersion("m", "v1.2.3", Path("."), None, "sft", "b", "a", "d@v1", "h", [], {}, 0, "cpu", 0, "")
    same = dict(base_model="b", architecture="a", dataset="d@v1", dataset_hash="h")
    assert next_version(parent, **same) == "v1.2.4"
    assert next_version(parent, **{**same, "dataset": "d@v2", "dataset_hash": "h2"}) == "v1.3.0"
    assert next_version(parent, **{**same, "base_model": "other"}) == "v2.0.0"
    assert next_version(parent, **{**same, "architecture": "llama:layers=15"}) == "v2.0.0"


def test_registry_writes_atomically_and_lists(tmp_path):
    from assay.registry import list_models, register

    project = Project(tmp_path)
    common = dict(recipe="sft", base_model="b", architecture="a", dataset="d@v1", dataset_hash="h",
                  teachers=["t"], metrics={"eval_loss": 1.0}, config={}, wall_time_s=1.0, device="cpu",
                  cost_usd=0.0)

    def broken(folder, version, parent):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError):
        register(project, "m", broken, **common)
    assert list_models(project) == [] and [p.name for p in (tmp_path / "models" / "m").iterdir()] == []

    def ok(folder, version, parent):
        (folder / "weights.bin").write_bytes(version.encode())

    first = register(project, "m", ok, **common)
    second = register(project, "m", ok, **{**common, "dataset": "d@v2", "dataset_hash": "h2"})
    assert (first.version, second.version, second.parent) == ("v1.0.0", "v1.1.0", "m@v1.0.0")
    assert (second.path / "weights.bin").read_bytes() == b"v1.1.0"
    rows = list_models(project)
    assert {(r["name"], r["version"]) for r in rows} == {("m", "v1.0.0"), ("m", "v1.1.0")}
    assert rows[0]["teachers"] == ["t"] and rows[0]["metrics"] == {"eval_loss": 1.0}


def test_kd_loss_terms():
    import torch

    from assay.training.distill import kd_loss

    torch.manual_seed(0)
    full = torch.randn(2, 5, 11, requires_grad=True)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    mask = labels[:, 1:] != -100
    logits, targets = full[:, :-1][mask], labels[:, 1:][mask]  # the completion head's rows
    teacher = torch.log_softmax(logits.detach() / 2.0, dim=-1)
    loss, ce, kl = kd_loss(logits, teacher, targets, alpha=0.3, temperature=2.0)
    assert kl.abs() < 1e-6  # a student equal to its teacher has nothing to learn from it
    assert loss.item() == pytest.approx(0.3 * ce.item(), rel=1e-5)
    only_ce, _, _ = kd_loss(logits, teacher + 0.0, targets, alpha=1.0, temperature=2.0)
    assert only_ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)
    shifted = torch.log_softmax(torch.randn_like(teacher), dim=-1)
    loss, _, kl = kd_loss(logits, shifted, targets, alpha=0.0, temperature=2.0)
    assert kl > 0
    loss.backward()
    assert full.grad is not None and full.grad.abs().sum() > 0


def test_completion_head_gives_the_models_own_loss_and_gradients(assay_cache):
    """The head's loss and LoRA gradients equal those of the full-logits forward, on packed and padded rows."""
    import torch
    from peft import get_peft_model

    from assay.models import load_causal_lm
    from assay.training.common import lora_config
    from assay.training.config import LoraSection
    from assay.training.head import add_completion_head, inner_model

    model, _ = load_causal_lm("smollm2-135m-instruct", dtype=torch.float32)
    model = get_peft_model(model, lora_config(LoraSection(rank=4, dropout=0.0)))
    add_completion_head(inner_model(model))
    torch.manual_seed(0)
    ids = torch.randint(10, 40000, (2, 24))
    labels = ids.clone()
    labels[:, :15] = -100  # completion only
    labels[1, 20:] = -100  # and some padding
    position_ids = torch.cat([torch.arange(10), torch.arange(14)]).repeat(2, 1)  # two packed examples per row
    labels[position_ids == 0] = -100
    batch = {"input_ids": ids, "labels": labels, "position_ids": position_ids}

    def lora_grads():
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        return grads

    head = model(**batch, completion_head=True, use_cache=False)
    head.loss.backward()
    head_grads = lora_grads()
    full = model(**batch, use_cache=False)
    full.loss.backward()
    full_grads = lora_grads()
    assert head.logits.shape == (int((labels[:, 1:] != -100).sum()), model.config.vocab_size)
    assert head.loss.item() == pytest.approx(full.loss.item(), rel=1e-5)
    assert head_grads.keys() == full_grads.keys() and len(head_grads) > 0
    for name, grad in head_grads.items():
        # the two paths sum in a different order (and over threads), so compare relative to the gradient's size
        error = (grad - full_grads[name]).norm() / full_grads[name].norm().clamp_min(1e-12)
        assert error.item() < 1e-4, name
    # without the flag the forward is the model's own: generation keeps working
    assert model(input_ids=ids[:, :5]).logits.shape == (2, 5, model.config.vocab_size)


# ---------------------------------------------------------------- real training runs

@pytest.fixture(scope="module")
def sft_version(project):
    from assay import training
    started = time.perf_counter()
    version = training.run(SFT_YAML, TINY, project=project)
    print(f"\ntiny SFT run: {time.perf_counter() - started:.1f}s, metrics {version.metrics}")
    return version


@pytest.mark.slow
def test_sft_run_writes_a_complete_registered_version(project, sft_version):
    from assay.registry import list_models
    from assay.training.common import read_log

    path = sft_version.path
    assert path == project.models / "tiny" / "v1.0.0" and sft_version.parent is None
    adapter = json.loads((path / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    assert (path / "adapter" / "adapter_model.safetensors").stat().st_size > 0
    assert (path / "config.yaml").read_text().startswith("# resolved config of tiny@v1.0.0")
    card = (path / "README.md").read_text()
    dataset = DatasetStore(project.datasets).get("notes")
    for needle in ("smollm2-135m-instruct", dataset.ref, dataset.manifest["content_hash"], "wall time",
                   "estimated cost", "eval_loss", "train_truncated_input"):
        assert needle in card, needle
    info = json.loads((path / "run.json").read_text())
    assert info["libraries"]["transformers"] and info["libraries"]["peft"] and info["seed"] == 42
    losses = [r for r in read_log(path / "training_log.jsonl") if "loss" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    metrics = sft_version.metrics
    assert metrics["eval_loss"] < metrics["base_loss"]  # four steps already beat zero-shot on validation
    assert 0 <= metrics["eval_rouge_l"] <= 1 and metrics["best_step"] in (2, 4)
    row = next(r for r in list_models(project) if r["name"] == "tiny")
    assert row["version"] == "v1.0.0" and row["dataset"] == dataset.ref
    assert not (project.models / "tiny" / ".runs").exists()  # checkpoints go once the version is in


@pytest.mark.slow
def test_packed_rows_do_not_attend_across_examples(tokenizer, assay_cache):
    """A packed row gives each example the logits it gets alone; padding changes nothing either."""
    import torch
    from datasets import Dataset

    from assay.models import load_causal_lm
    from assay.training.collate import RowCollator, pack_rows
    from assay.training.data import encode, to_examples

    model, _ = load_causal_lm("smollm2-135m-instruct")
    examples, _ = to_examples(notes_frame(summary_rows()[:3]))
    rows = encode(examples, tokenizer, 160).rows
    packed = pack_rows(Dataset.from_list(rows), 512)
    assert len(packed) < len(rows)  # at least two examples share a row
    collate = RowCollator(tokenizer.pad_token_id)
    batch = collate([packed[i] for i in range(len(packed))])
    with torch.no_grad():
        # use_cache=False as the trainers pass it: transformers detects packing only without a KV cache
        together = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for row, example in enumerate(packed):
            start = 0
            for length in example["seq_lengths"]:
                ids = torch.tensor([example["input_ids"][start:start + length]])
                alone = model(input_ids=ids, use_cache=False).logits[0]
                assert torch.allclose(together[row, start:start + length], alone, atol=1e-3)
                start += length
    assert batch["real_tokens"].item() == sum(len(r["input_ids"]) for r in rows)  # what tokens/s counts


@pytest.mark.slow
def test_adapter_loads_and_generates(sft_version):
    from peft import PeftModel

    from assay.evals.generate import generate
    from assay.models import load_causal_lm

    base, tokenizer = load_causal_lm("smollm2-135m-instruct")
    model = PeftModel.from_pretrained(base, sft_version.path / "adapter")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Summarize: tea, milk, bread."}],
                                           tokenize=False, add_generation_prompt=True)
    assert generate(model, tokenizer, [prompt], max_new_tokens=6)[0].text


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_same_loss_curve(tmp_path, sft_version, assay_cache):
    """Kill a run right after its step-2 checkpoint, resume it: steps 1-4 logged once, losses as uninterrupted."""
    from assay import training
    from assay.training.common import read_log

    write_notes(tmp_path)  # same rows, so same content hash and data order as the uninterrupted run
    kill_after_checkpoint(tmp_path, SFT_YAML, TINY, "tiny", step=2)

    resumed = training.run(SFT_YAML, TINY, resume=True, project=Project(tmp_path))
    want = [(r["step"], r["loss"]) for r in read_log(sft_version.path / "training_log.jsonl") if "loss" in r]
    got = [(r["step"], r["loss"]) for r in read_log(resumed.path / "training_log.jsonl") if "loss" in r]
    assert [s for s, _ in got] == [1, 2, 3, 4]  # no step repeated or skipped
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], rel=1e-4)
    assert resumed.metrics["steps"] == 4


def kill_after_checkpoint(root: Path, yaml_path: Path, overrides: list[str], name: str, step: int) -> None:
    """Run `training.run` in a child process and SIGKILL it as soon as checkpoint-`step` is complete."""
    env = {**os.environ, "ASSAY_HOME": str(root), "PYTHONPATH": str(REPO)}
    code = f"import training; training.run({str(yaml_path)!r}, {overrides!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = root / "models" / name / ".runs"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            states = list(runs.glob(f"*/checkpoints/checkpoint-{step}/trainer_state.json"))
            if states and states[0].stat().st_size > 0:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (root / "models" / name / "v1.0.0").exists()


# the compression path, tiny: 4 examples in batches of 2, so epoch 2 is served from the top-k cache
COMPRESS = ["data.max_seq_length=96", "data.packing=false", "data.limit=4", "data.min_train_examples=4",
            "teacher.cache_top_k=16", "teacher.alpha=0.2", "train.max_steps=4", "train.batch_size=2",
            "train.learning_rate=2e-4", "train.warmup_ratio=0", "train.save_steps=4", "eval.every_steps=4",
            "eval.generate_examples=0", "output.name=tiny-distilled"]


@pytest.mark.slow
def test_compressed_student_distils_from_its_teacher(project):
    """Half the layers of SmolLM2, every weight trained on KD loss, with the teacher's top-k cached."""
    from transformers import AutoConfig

    from assay import training
    from assay.training.common import read_log

    version = training.run(DISTILL_YAML, COMPRESS, project=project)
    config = AutoConfig.from_pretrained(version.path / "model")
    assert config.num_hidden_layers == 15  # 30 teacher layers, every 2nd kept
    assert "layers=15" in version.architecture and version.recipe == "distill-logit"
    assert version.base_model == "smollm2-135m-instruct (layer-dropped, keep_every=2)"
    log = [r for r in read_log(version.path / "training_log.jsonl") if "loss" in r]
    losses = [r["loss"] for r in log]
    assert len(losses) == 4 and sum(losses[-2:]) < sum(losses[:2])  # KD loss falls
    # 4 examples in batches of 2: the teacher runs for the 2 batches of epoch 1, then its cache answers
    assert [r["teacher_forward_passes"] for r in log] == [1, 2, 2, 2]
    assert version.metrics["eval_loss"] < version.metrics["base_loss"]
    assert "teacher model (logits): smollm2-135m-instruct" in (version.path / "README.md").read_text()


@pytest.mark.slow
def test_two_process_run_writes_once_and_repeats_exactly(tmp_path, assay_cache):
    """torchrun with 2 CPU processes (gloo): one registered version, one log, same losses when run again."""
    import socket

    from assay.training.common import read_log

    write_notes(tmp_path)
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}

    def launch(name: str) -> subprocess.CompletedProcess:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "assay", "train", str(SFT_YAML), *TINY[:-1], f"output.name={name}"]
        return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    first, second = launch("dist"), launch("dist")
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert first.stdout.count("registered dist@") == 1  # the main process reports; the other is silent
    from assay import training
    registered = training.list_models(Project(tmp_path))
    assert sorted(m["version"] for m in registered) == ["v1.0.0", "v1.0.1"]  # one row per run, not per process
    curves = []
    for version in ("v1.0.0", "v1.0.1"):
        folder = tmp_path / "models" / "dist" / version
        card = json.loads((folder / "run.json").read_text())
        assert "x 2 processes" in card["device"]
        assert card["metrics"]["epochs"] == pytest.approx(4 * 2 * 2 / 28)  # each step: 2 processes x batch 2
        rows = [r for r in read_log(folder / "training_log.jsonl") if "loss" in r]
        assert [r["step"] for r in rows] == [1, 2, 3, 4]  # logged once, by the main process
        curves.append([r["loss"] for r in rows])
    assert curves[0] == pytest.approx(curves[1], rel=1e-5)  # seeded sampler and init on every process
    assert not (tmp_path / "models" / "dist" / ".runs").exists()


@pytest.mark.slow
def test_teacher_cache_survives_a_kill(tmp_path, assay_cache):
    """Killed after the epoch-1 checkpoint, the resumed run answers epoch 2 from the saved top-k cache."""
    from assay import training
    from assay.training.common import read_log

    write_notes(tmp_path)
    overrides = [o for o in COMPRESS if not o.startswith(("train.save_steps", "eval.every_steps"))] + [
        "train.save_steps=2", "eval.every_steps=2"]
    kill_after_checkpoint(tmp_path, DISTILL_YAML, overrides, "tiny-distilled", step=2)
    assert list((tmp_path / "models" / "tiny-distilled" / ".runs").glob("*/teacher_topk.rank0.pt"))
    resumed = training.run(DISTILL_YAML, overrides, resume=True, project=Project(tmp_path))
    log = [r for r in read_log(resumed.path / "training_log.jsonl") if "loss" in r]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["teacher_forward_passes"] for r in log] == [1, 2, 2, 2]  # no teacher pass after the resume


@pytest.mark.slow
def test_lora_student_distils_from_a_fine_tuned_merged_teacher(project):
    """save_merged writes weights equal to base + adapter; that folder then teaches a LoRA student by logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from assay import training
    from assay.models import load_causal_lm
    from assay.training.common import read_log

    teacher = training.run(SFT_YAML, TINY[:-1] + ["train.max_steps=2", "output.save_merged=true",
                                                  "output.name=tiny-teacher"], project=project)
    merged = AutoModelForCausalLM.from_pretrained(teacher.path / "merged", dtype=torch.float32)
    base, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, teacher.path / "adapter")
    ids = tokenizer("Standup notes: the release slipped to Friday.", return_tensors="pt").input_ids
    with torch.no_grad():
        difference = (merged(ids).logits - adapted(ids).logits).abs().max().item()
    assert difference < 1e-3

    overrides = [o for o in COMPRESS if not o.startswith(("output.name", "teacher.cache_top_k"))] + [
        f"teacher.model={teacher.path / 'merged'}", "compress.keep_every=null", "lora.enabled=true",
        "lora.rank=8", "lora.alpha=16", "train.learning_rate=1e-3", "output.name=tiny-lora-student"]
    student = training.run(DISTILL_YAML, overrides, project=project)
    assert student.recipe == "distill-logit" and student.base_model == "smollm2-135m-instruct"
    assert (student.path / "adapter" / "adapter_config.json").exists()
    log = [r for r in read_log(student.path / "training_log.jsonl") if "loss" in r]
    assert log[0]["kl"] > 0  # the fine-tuned teacher differs from the student's base
    assert sum(r["loss"] for r in log[-2:]) < sum(r["loss"] for r in log[:2])
    assert [r["teacher_forward_passes"] for r in log] == [1, 2, 3, 4]  # no cache: the teacher runs every step
    assert str(teacher.path / "merged") in (student.path / "README.md").read_text()


@pytest.mark.slow
def test_real_out_of_memory_names_the_knobs(tmp_path, assay_cache):
    """A run whose batch cannot fit (address space capped at 5 GiB) stops with the knobs, not a traceback."""
    import resource

    write_notes(tmp_path)
    limit = 5 * 2**30

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, "-m", "assay", "train", str(SFT_YAML), "data.max_seq_length=512", "train.batch_size=16",
           "train.max_steps=1", "eval.generate_examples=0", "eval.gate=null", "eval.best_metric=loss",
           "output.name=too-big"]
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          preexec_fn=cap_memory)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())  # the one-line error, as rich wrapped it
    assert "error: out of memory on cpu" in message
    for knob in ("train.batch_size=8 train.gradient_accumulation=2", "data.max_seq_length=256",
                 "model.gradient_checkpointing=true"):
        assert knob in message
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "models" / "too-big" / "v1.0.0").exists()
