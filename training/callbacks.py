"""Trainer callbacks of both recipes: the JSONL step log and the generative evaluation (ROUGE-L, ship gate)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from transformers import EarlyStoppingCallback, TrainerCallback

from assay.evals.generate import generate
from assay.evals.metrics import rouge_l
from assay.training.data import Example, render_prompt
from assay.training.gatecheck import ValidationGate, headline_of, rank
from assay.training.memory import release


class JsonlLog(TrainerCallback):
    """Every logged step as one JSON line; `elapsed_s` carries on across --resume."""

    def __init__(self, path: Path, elapsed_before: float = 0.0):
        self.path, self.elapsed_before, self.started = path, elapsed_before, time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            elapsed = round(self.elapsed_before + time.time() - self.started, 3)
            self._write({"step": state.global_step, "epoch": state.epoch, "elapsed_s": elapsed, **logs})

    def _write(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


class GenerativeEval(TrainerCallback):
    """ROUGE-L of greedy answers on a validation sample, added to the metrics of each evaluation, and,
    with a gate, its rules on the same answers (training.gatecheck) and the checkpoint's rank by them.

    It runs before EarlyStoppingCallback and the best-checkpoint choice, which read the same dict
    (`eval_gate_rank` when a gate is set, else `eval_rouge_l` or `eval_loss`).
    """

    def __init__(self, log: JsonlLog, tokenizer, examples: list[Example], max_new_tokens: int, *,
                 gate: ValidationGate | None = None, base_predictions: list[str] | None = None,
                 best_metric: str = "rouge_l"):
        self.log, self.tokenizer, self.examples, self.max_new_tokens = log, tokenizer, examples, max_new_tokens
        self.gate, self.best_metric = gate, best_metric
        self.base_predictions = base_predictions  # the zero-shot answers (this run's, or its log's on --resume)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not self.examples or metrics is None:
            return
        prompts = [render_prompt(self.tokenizer, ex.prompt) for ex in self.examples]
        preds = [g.text for g in generate(model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens)]
        references = [ex.completion for ex in self.examples]
        score = sum(rouge_l(p, r) for p, r in zip(preds, references)) / len(preds)
        # "eval_loss" -> "eval_rouge_l"; the baseline, evaluated with prefix "base", gets "base_rouge_l"
        prefix = next((k[:-5] for k in metrics if k.endswith("_loss")), "eval")
        metrics[f"{prefix}_rouge_l"] = score  # every process scores: early stopping must agree everywhere
        row = {"step": state.global_step, "epoch": state.epoch, f"{prefix}_rouge_l": score,
               f"{prefix}_predictions": preds}
        if prefix == "base":
            self.base_predictions = preds
        if self.gate is not None:
            checks = self.gate.check(preds, self.base_predictions, references)
            metrics[f"{prefix}_gate_passed"] = sum(c.passed for c in checks)
            metrics[f"{prefix}_gate_rank"] = rank(checks, headline_of(metrics, prefix, self.best_metric))
            row[f"{prefix}_gate"] = [asdict(c) for c in checks]
        if state.is_world_process_zero:
            # every answer: the run's closing comparison with the base pairs them row by row (training.versus)
            self.log._write(row)


class ReleaseMemory(TrainerCallback):
    """Hand freed memory back after each optimizer step and evaluation (training.memory.release)."""

    def on_step_end(self, args, state, control, **kwargs):
        release()

    def on_evaluate(self, args, state, control, **kwargs):
        release()


def make_callbacks(log_path: Path, tokenizer, eval_examples: list[Example], eval_cfg, *, early_stopping: bool,
                   elapsed_before: float = 0.0, gate: ValidationGate | None = None,
                   base_predictions: list[str] | None = None) -> list[TrainerCallback]:
    log = JsonlLog(log_path, elapsed_before)
    found: list[TrainerCallback] = [log, GenerativeEval(log, tokenizer, eval_examples, eval_cfg.max_new_tokens,
                                                        gate=gate, base_predictions=base_predictions,
                                                        best_metric=eval_cfg.best_metric)]
    if early_stopping and eval_cfg.early_stopping_patience:
        found.append(EarlyStoppingCallback(early_stopping_patience=eval_cfg.early_stopping_patience))
    return [*found, ReleaseMemory()]  # last: after the evaluation's own generation
