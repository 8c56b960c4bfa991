"""Distillation recipes: sequence level, logit level, and the compression path. Reads top to bottom.

- sequence: SFT on the teacher outputs already in the dataset (`output`, with `teacher` lineage);
  the SFT recipe as is, refused when no row names a teacher.
- logit: a local teacher sharing the student's tokenizer runs on every batch;
  loss = alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher_T || student_T) over completion tokens,
  optionally against the teacher's top-k log-probs, cached per example after their first use and saved
  with each checkpoint, so --resume does not run the teacher again for rows it has seen.
- compression: the student is the teacher with every k-th decoder layer kept (DistilBERT style),
  every weight trained, then distilled as above.

The trainer is the SFT recipe's (TRL's SFTTrainer + the completion head) with its loss replaced, so
data, packing, evaluation, checkpoints, --resume and the registry are the SFT recipe's.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from assay.project import Project
from assay.registry import ModelVersion
from assay.store import DatasetStore
from assay.training import sft
from assay.training.common import TrainingError, load_base
from assay.training.config import DistillRunConfig, ModelSection
from assay.training.data import IGNORE, load_splits
from assay.training.head import CompletionOutput, RecipeTrainer, add_completion_head, supports_completion_head


def train(cfg: DistillRunConfig, *, project: Project | None = None, resume: bool = False) -> ModelVersion:
    project = project or Project.current()
    if cfg.mode == "sequence":
        _require_teacher_outputs(cfg, project)
        return sft.train(cfg, project=project, resume=resume, recipe="distill-sequence")

    # 1. Teacher, frozen; it must share the student's tokenizer, since the KL compares token by token
    teacher, teacher_tokenizer = load_base(ModelSection(base=cfg.teacher.model, precision=cfg.model.precision),
                                           for_training=False)
    teacher.eval().requires_grad_(False)

    # 2. Student: the catalogue base (+ LoRA), or the teacher with layers dropped (all weights train)
    if cfg.compress.keep_every:
        def load_student():
            return drop_layers(teacher, cfg.compress.keep_every), teacher_tokenizer
        base_label = f"{cfg.teacher.model} (layer-dropped, keep_every={cfg.compress.keep_every})"
    else:
        def load_student():
            student, tokenizer = load_base(cfg.model)
            if tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
                raise TrainingError(f"teacher.model {cfg.teacher.model!r} and model.base {cfg.model.base!r} use "
                                    "different tokenizers; logit distillation compares them token by token. "
                                    "Pick a teacher of the same family, or use mode: sequence")
            return student, tokenizer
        base_label = cfg.model.base

    # 3. The SFT recipe with the distillation loss
    def make_trainer(**kwargs):
        return DistillTrainer(teacher=teacher, alpha=cfg.teacher.alpha, temperature=cfg.teacher.temperature,
                              top_k=cfg.teacher.cache_top_k, **kwargs)

    return sft.train(cfg, project=project, resume=resume, recipe="distill-logit",
                     load_model=load_student, make_trainer=make_trainer, base_label=base_label,
                     card=[f"- teacher model (logits): {cfg.teacher.model}, alpha {cfg.teacher.alpha}, "
                           f"temperature {cfg.teacher.temperature}"
                           + (f", top-{cfg.teacher.cache_top_k} cached" if cfg.teacher.cache_top_k else "")])


def _require_teacher_outputs(cfg: DistillRunConfig, project: Project) -> None:
    dataset = DatasetStore(project.datasets).get(cfg.data.dataset)
    train_df, _ = load_splits(dataset, task=cfg.data.task, limit=cfg.data.limit)
    with_teacher = train_df.filter(train_df["teacher"].is_not_null()).height if "teacher" in train_df.columns else 0
    if with_teacher == 0:
        raise TrainingError(f"mode: sequence distils teacher outputs, but none of the {train_df.height} train rows "
                            f"of {dataset.ref} names a teacher (column 'teacher'); run synthesis first, "
                            "or train with recipe: sft")


def drop_layers(model, keep_every: int):
    """A copy of `model` keeping decoder layers 0, k, 2k, ... (their weights, renumbered for the KV cache)."""
    nn = torch.nn
    text_config = model.config.get_text_config()
    total = text_config.num_hidden_layers
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.ModuleList) and len(module) == total]
    if len(found) != 1:
        raise TrainingError(f"cannot find the {total} decoder layers of {type(model).__name__} to drop from")
    path = found[0][0]
    keep = list(range(0, total, keep_every))
    student = copy.deepcopy(model)
    student.requires_grad_(True)
    parent_path, _, attr = path.rpartition(".")
    parent = student.get_submodule(parent_path) if parent_path else student
    layers = getattr(parent, attr)
    kept = nn.ModuleList([layers[i] for i in keep])
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    setattr(parent, attr, kept)
    config = student.config.get_text_config()
    config.num_hidden_layers = len(keep)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep]
    return student


def kd_loss(student_logits, teacher_logprobs, targets, *, alpha: float, temperature: float,
            num_items=None, teacher_index=None):
    """alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T), summed over completion tokens / num_items.

    `student_logits` (tokens, vocab) and `targets` (tokens,) are the labelled positions only (the
    completion head's rows); `teacher_logprobs` are already at temperature T, one row per such token;
    with `teacher_index` they cover only those vocabulary ids (top-k).
    Returns (loss, ce, kl) where ce and kl are per-token means.
    """
    logits = student_logits.float()
    count = max(len(targets), 1)
    denominator = num_items if num_items is not None else count
    ce_sum = F.cross_entropy(logits, targets, reduction="sum")
    student_logprobs = F.log_softmax(logits / temperature, dim=-1)
    if teacher_index is not None:
        student_logprobs = student_logprobs.gather(-1, teacher_index)
    kl_sum = (teacher_logprobs.exp() * (teacher_logprobs - student_logprobs)).sum()
    loss = (alpha * ce_sum + (1 - alpha) * temperature ** 2 * kl_sum) / denominator
    return loss, ce_sum.detach() / count, kl_sum.detach() / count


class DistillTrainer(RecipeTrainer):
    """The SFT recipe's trainer whose training loss is the distillation loss; evaluation stays CE on the labels.

    Student and teacher both go through the completion head: logits only at the labelled positions.
    """

    def __init__(self, *args, teacher, alpha: float, temperature: float, top_k: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device)
        self.teacher_head = supports_completion_head(teacher)
        if self.teacher_head:
            add_completion_head(teacher)
        self.alpha, self.temperature, self.top_k = alpha, temperature, top_k
        self.teacher_cache: dict[str, tuple] = {}  # example hash -> (top-k ids, top-k log-probs)
        self.teacher_calls = 0
        if top_k and self._cache_file().exists():  # --resume: the teacher does not run again for cached rows
            saved = torch.load(self._cache_file(), weights_only=True)
            self.teacher_cache, self.teacher_calls = saved["rows"], saved["teacher_calls"]

    def _cache_file(self) -> Path:
        """Beside the checkpoints of the run (its key covers teacher, temperature and k); one per process."""
        return Path(self.args.output_dir).parent / f"teacher_topk.rank{self.args.process_index}.pt"

    def _save_checkpoint(self, model, trial):
        # before the checkpoint, whose trainer_state.json marks it complete: a checkpoint never has an older cache
        if self.top_k:
            tmp = self._cache_file().with_suffix(".tmp")
            torch.save({"rows": self.teacher_cache, "teacher_calls": self.teacher_calls}, tmp)
            os.replace(tmp, self._cache_file())
        super()._save_checkpoint(model, trial)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._take_real_tokens(inputs)
        outputs = labelled_logits(model, inputs, self.completion_head)
        if not model.training:  # validation loss is plain CE, comparable with the SFT recipe's
            loss = F.cross_entropy(outputs.logits, outputs.labels)
            return (loss, outputs) if return_outputs else loss
        index, teacher_logprobs = self._teacher(inputs)
        loss, ce, kl = kd_loss(outputs.logits, teacher_logprobs, outputs.labels, alpha=self.alpha,
                               temperature=self.temperature, num_items=num_items_in_batch, teacher_index=index)
        loss = self._scale_for_ranks(loss, num_items_in_batch)
        self._record(outputs, inputs)
        metrics = self._metrics["train"]
        metrics["ce"].append(ce.item())
        metrics["kl"].append(kl.item())
        metrics["teacher_forward_passes"].append(self.teacher_calls)
        return (loss, outputs) if return_outputs else loss

    def _teacher(self, inputs):
        """Teacher log-probs at temperature T on the completion tokens, from the cache when every row is in it."""
        labels = inputs["labels"]
        keys = _row_keys(inputs["input_ids"], self.processing_class.pad_token_id) if self.top_k else None
        if keys and all(k in self.teacher_cache for k in keys):
            index = torch.cat([self.teacher_cache[k][0] for k in keys]).to(labels.device).long()
            values = torch.cat([self.teacher_cache[k][1] for k in keys]).to(labels.device).float()
            return index, values
        with torch.no_grad():
            self.teacher_calls += 1
            logits = labelled_logits(self.teacher, inputs, self.teacher_head).logits
            logprobs = F.log_softmax(logits / self.temperature, dim=-1)
            if not self.top_k:
                return None, logprobs
            values, index = logprobs.topk(self.top_k, dim=-1)
            values = values - values.logsumexp(dim=-1, keepdim=True)  # renormalised over the kept ids
        per_row = (labels[:, 1:] != IGNORE).sum(1).tolist()
        for key, row_index, row_values in zip(keys, index.split(per_row), values.split(per_row)):
            self.teacher_cache[key] = (row_index.to(torch.int32).cpu(), row_values.to(torch.float16).cpu())
        return index, values


def labelled_logits(model, inputs, completion_head: bool) -> CompletionOutput:
    """Logits at the labelled positions: through the completion head, or cut from the full logits."""
    if completion_head:
        return model(**inputs, completion_head=True)
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    target = inputs["labels"][:, 1:]
    mask = target != IGNORE
    logits = model(**forward, use_cache=False).logits[:, :-1][mask].float()
    return CompletionOutput(logits=logits, labels=target[mask])


def _row_keys(input_ids, pad_token_id: int) -> list[str]:
    """One key per example of an unpacked batch: the hash of its ids without the trailing padding."""
    keys = []
    for row in input_ids.cpu():
        real = len(row)
        while real and row[real - 1] == pad_token_id:
            real -= 1
        keys.append(hashlib.sha1(row[:real].numpy().tobytes()).hexdigest())
    return keys
