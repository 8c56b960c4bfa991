"""LoRA SFT recipe: a dataset version in, a registered model version out. Reads top to bottom.

    data -> chat-template examples with completion-only labels, each cut to max_seq_length
    base model (catalogue, optional 4/8-bit) + LoRA
    TRL SFTTrainer + the completion head (logits only where labels are): packing (no cross-example
        attention) or dynamic padding, warmup + schedule, evaluation on the validation split
        (loss + ROUGE-L on a sample, and the ship gate's rules on the same answers), early stopping,
        best checkpoint (the one passing the most gate rules, then the best ROUGE-L)
    save adapter + log + resolved config + card, register the version
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from assay.project import Project
from assay.registry import ModelVersion
from assay.store import DatasetStore
from assay.training import gatecheck, runs
from assay.training.common import (
    architecture,
    device_name,
    is_main_process,
    is_oom,
    load_base,
    lora_config,
    oom_error,
    read_log,
    trainer_args,
    wait_for_everyone,
)
from assay.training.config import DistillRunConfig, SFTRunConfig
from assay.training.data import encode, load_splits, refuse_small, to_examples
from assay.training.memory import plan_batch, plan_steps
from assay.training.versus import from_log


def train(cfg: SFTRunConfig | DistillRunConfig, *, project: Project | None = None, resume: bool = False,
          recipe: str = "sft", load_model=None, make_trainer=None, base_label: str | None = None,
          card: list[str] | None = None) -> ModelVersion:
    """Train and register one version.

    distill.py reuses this recipe through `load_model` (its student) and `make_trainer` (its loss);
    `base_label` and `card` name them on the model card.
    """
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, set_seed

    from assay.training.callbacks import make_callbacks
    from assay.training.collate import RowCollator, pack_rows
    from assay.training.head import RecipeTrainer

    project = project or Project.current()
    set_seed(cfg.train.seed)

    # 1. Data: refused with counts before any model loads when there is too little of it
    dataset = DatasetStore(project.datasets).get(cfg.data.dataset)
    train_df, val_df = load_splits(dataset, task=cfg.data.task, limit=cfg.data.limit)
    train_examples, dropped = to_examples(train_df, cfg.data.system_prompt)
    val_examples, val_dropped = to_examples(val_df, cfg.data.system_prompt)
    refuse_small(len(train_examples), len(val_examples), dropped, cfg.data.min_train_examples, dataset.ref)
    teachers = runs.teachers_of(train_df)

    # 2. Base model and tokens
    model, tokenizer = load_model() if load_model else load_base(cfg.model)
    base_architecture = architecture(model)
    train_set = encode(train_examples, tokenizer, cfg.data.max_seq_length)
    val_set = encode(val_examples, tokenizer, cfg.data.max_seq_length)
    if train_set.stats["dropped_prompt_too_long"]:  # the chat template alone overflows max_seq_length
        too_long = dropped + Counter(prompt_too_long_for_max_seq_length=train_set.stats["dropped_prompt_too_long"])
        refuse_small(len(train_set.rows), len(val_set.rows), too_long, cfg.data.min_train_examples, dataset.ref)
    data_stats = {
        "train_rows": train_df.height, "validation_rows": val_df.height,
        **{f"train_{k}": v for k, v in train_set.stats.items()},
        **{f"train_dropped_{k}": v for k, v in sorted(dropped.items())},
        "validation_examples": val_set.stats["examples"],
        **{f"validation_dropped_{k}": v for k, v in sorted(val_dropped.items())},
    }

    # 3. The run folder: checkpoints and the log, found again by --resume. The trainer arguments come
    #    first: they start the process group when several processes run (accelerate launch, torchrun)
    run = runs.run_dir(project, cfg, dataset)
    has_eval = bool(val_set.rows)
    flash = cfg.model.attn_implementation.startswith("flash")
    args = trainer_args(cfg.train, cfg.model, output_dir=run.checkpoints, has_eval=has_eval, eval_cfg=cfg.eval,
                        max_seq_length=cfg.data.max_seq_length, packing=cfg.data.packing and flash,
                        restore_callback_states_from_checkpoint=True)
    checkpoint, note = runs.open_run(run, cfg, resume=resume)
    if note and is_main_process():
        print(f"[assay train] {note}")
    previous = read_log(run.log)
    elapsed_before = previous[-1].get("elapsed_s", 0.0) if previous else 0.0
    gate = gatecheck.load(cfg.eval.gate) if cfg.eval.gate and has_eval else None
    # a resumed run compares with the zero-shot answers its first session logged
    base_predictions = next((r["base_predictions"] for r in previous if "base_predictions" in r), None)
    baseline_path = run.path / "baseline.json"
    need_baseline = has_eval and not baseline_path.exists()  # decided before anyone writes it

    # 4. Trainer. FlashAttention takes TRL's padding-free packing (one flattened row per batch); SDPA and
    #    eager attention get rows of max_seq_length packed here, so attention memory stays bounded
    train_data = Dataset.from_list(train_set.rows)
    eval_data = Dataset.from_list(val_set.rows) if has_eval else None
    collator = None if flash else RowCollator(tokenizer.pad_token_id)
    if cfg.data.packing and not flash:
        train_data = pack_rows(train_data, cfg.data.max_seq_length)
        eval_data = pack_rows(eval_data, cfg.data.max_seq_length) if eval_data is not None else None
    trainer_cls = make_trainer or RecipeTrainer
    trainer = trainer_cls(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora) if cfg.lora.enabled else None,
        callbacks=make_callbacks(run.log, tokenizer, val_set.examples[:cfg.eval.generate_examples], cfg.eval,
                                 early_stopping=has_eval, elapsed_before=elapsed_before, gate=gate,
                                 base_predictions=base_predictions),
    )

    # rows per step from the memory budget (batch_size auto), and enough optimizer steps on small data
    batching = plan_batch(trainer, cfg.train)
    steps = plan_steps(trainer, cfg.train)
    if is_main_process():
        print(f"[assay train] {batching['note']}; {steps['note']}")

    # 5. Train (the zero-shot validation loss first, so the card shows what training gained)
    started = time.time()
    try:
        if need_baseline:
            stopper = trainer.pop_callback(EarlyStoppingCallback)  # the baseline is no step of the run
            baseline = trainer.evaluate(metric_key_prefix="base")
            if is_main_process():
                baseline_path.write_text(json.dumps(baseline), encoding="utf-8")
            if stopper:
                trainer.add_callback(stopper)
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        wait_for_everyone()  # the main process has written the whole log (and baseline.json): all read the same
        # the kept weights are the best evaluation's: its metrics are in the log, no need to evaluate again
        final = _evaluation_at(run.log, trainer.state.best_global_step) or (trainer.evaluate() if has_eval else {})
    except Exception as exc:
        if is_oom(exc):
            raise oom_error(exc, cfg) from exc
        raise
    baseline = json.loads(baseline_path.read_text(encoding="utf-8")) if baseline_path.exists() else {}
    # the kept weights' answers against the base's on the same validation rows, with a paired CI
    references = [ex.completion for ex in val_set.examples[:cfg.eval.generate_examples]]
    kept_step = trainer.state.best_global_step or trainer.state.global_step
    log_rows = read_log(run.log)
    versus = from_log(log_rows, kept_step, references)
    checks = gatecheck.from_log(log_rows, kept_step) if gate else None
    wall = elapsed_before + time.time() - started

    # 6. Save the kept (best) weights and register the version
    # real tokens trained in this session (TRL's own count assumes one flattened row per batch)
    seen = trainer.tokens_seen() or max((h.get("num_tokens", 0) for h in trainer.state.log_history), default=0)
    metrics = {
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "best_step": trainer.state.best_global_step,
        **{k: v for k, v in baseline.items() if k in ("base_loss", "base_rouge_l")},
        **{k: v for k, v in final.items() if k in ("eval_loss", "eval_rouge_l")},
        **versus,
        **({"gate_rules_passed": sum(c.passed for c in checks), "gate_rules_checked": len(checks),
            "gate": gatecheck.summary(checks, gate, len(references))} if checks is not None else {}),
        "train_tokens_seen": seen,
        **{k: v for k, v in batching.items() if k != "note"},
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 2),
        "tokens_per_second": round(seen / max(result.metrics.get("train_runtime", 0.0), 1e-9), 1),
    }
    if not has_eval:
        metrics["note"] = "no validation split: no evaluation, early stopping or best-checkpoint choice"

    def save(folder: Path) -> None:
        weights = folder / ("adapter" if cfg.lora.enabled else "model")
        trainer.model.save_pretrained(weights)
        tokenizer.save_pretrained(weights)
        if cfg.lora.enabled and cfg.output.save_merged:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(folder / "merged")
            tokenizer.save_pretrained(folder / "merged")

    return runs.finish(project, run, cfg, save=save, recipe=recipe, base_model=base_label or cfg.model.base,
                       architecture=base_architecture, dataset=dataset, teachers=teachers, metrics=metrics,
                       data_stats=data_stats, wall_time_s=wall, device=device_name(), extra_card=card)


def _evaluation_at(log: Path, step: int | None) -> dict:
    """eval_* metrics logged at `step` (loss and ROUGE-L come on separate lines)."""
    if not step:
        return {}
    found: dict = {}
    for row in read_log(log):
        if row["step"] == step:
            found.update({k: v for k, v in row.items() if k.startswith("eval_") and isinstance(v, float)})
    return found if "eval_loss" in found else {}
