"""A tiny real student for eval tests: a rank-4 LoRA on SmolLM2-135M-Instruct, a few AdamW steps on the sample
gold summaries (so its greedy outputs differ from the base model's), registered the way the recipes register one."""

from __future__ import annotations

import json
from pathlib import Path

from assay.project import Project

BASE = "smollm2-135m-instruct"
SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"


def gold_summaries(n: int) -> list[str]:
    rows = [json.loads(line) for line in (SAMPLE / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [r["summary"] for r in rows[:n]]


def train_adapter(folder: Path, steps: int = 4) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from assay.models import load_causal_lm

    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(BASE, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             lora_dropout=0.0, task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for text in gold_summaries(steps):
        ids = tokenizer(text, return_tensors="pt").input_ids
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder / "adapter")
    tokenizer.save_pretrained(folder / "adapter")


def register_student(project: Project, name: str = "notes-student"):
    from assay import registry

    def fill(folder: Path, version: str, parent: str | None) -> None:
        train_adapter(folder)
        (folder / "run.json").write_text(json.dumps({"name": name, "version": version, "base_model": BASE}),
                                         encoding="utf-8")
        (folder / "README.md").write_text(f"# {name} {version}\n", encoding="utf-8")

    return registry.register(project, name, fill, recipe="sft", base_model=BASE, architecture="llama:test",
                             dataset="notes@v1", dataset_hash="test", teachers=[], metrics={}, config={},
                             wall_time_s=1.0, device="cpu", cost_usd=0.0)
