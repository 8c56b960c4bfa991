"""Typed configs of `assay train`: one per recipe, sections shared where the recipes share a concern.

A YAML names its recipe (`recipe: sft` or `recipe: distill`). Field errors come from pydantic, the
cross-field ones from `problems()`; `training.load` reports them all at once, before any model loads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from assay.config import Strict

DEFAULT_BASE = "smollm2-135m-instruct"


class ModelSection(Strict):
    base: str = DEFAULT_BASE  # catalogue name, local HF folder, or a hub id already cached
    # "auto": bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU (CPU autocast is slower, not faster)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    quantize: Literal["none", "8bit", "4bit"] = "none"  # QLoRA through bitsandbytes; CUDA only
    gradient_checkpointing: bool = False  # trades ~30% speed for activation memory
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"


class LoraSection(Strict):
    enabled: bool = True  # False trains every weight (the compression path needs it: dropped layers leave gaps)
    rank: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class DataSection(Strict):
    dataset: str = Field(min_length=1)  # "name" (latest version) or "name@v3"
    task: str | None = None  # keep only rows of this task; None keeps all
    system_prompt: str | None = None  # prepended as a system turn when the rows carry none
    max_seq_length: int = Field(1024, ge=16)  # every example is truncated to this: memory is bounded by it
    packing: bool = True  # best-fit packing of short examples, no cross-example attention
    min_train_examples: int = Field(8, ge=1)  # fewer rows than this is refused, not trained on
    limit: int | None = Field(None, ge=1)  # use the first N train rows (smoke runs)


class TrainSection(Strict):
    epochs: float = Field(3.0, gt=0)
    # small data: epochs are raised until the run makes at least this many optimizer steps (packing puts
    # several examples in a row, so 3 epochs of 100 examples were 18 steps, too few to learn the task)
    min_steps: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs and min_steps when set
    # rows per forward/backward; "auto": the largest that fits memory_gb (training.memory), with
    # gradient accumulation making up rows_per_step
    batch_size: int | Literal["auto"] = 8
    gradient_accumulation: int = Field(1, ge=1)
    # with batch_size auto only (a number given for batch_size means batch_size x gradient_accumulation rows):
    rows_per_step: int = Field(8, ge=1)  # rows per optimizer step, whatever micro-batch fits
    memory_gb: float | None = Field(None, gt=0)  # the budget; None: 80% of what is free now

    @field_validator("batch_size", mode="before")
    @classmethod
    def _rows_or_auto(cls, value):
        # one message for the field, instead of one per member of the union
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        if isinstance(value, str) and value.isdigit() and int(value) >= 1:
            return int(value)
        raise ValueError(f"a number of rows (1 or more) or auto, got {value!r}")
    learning_rate: float = Field(2e-4, gt=0)
    schedule: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 42
    save_steps: int = Field(50, ge=1)  # checkpoint interval; --resume continues from the last one
    logging_steps: int = Field(1, ge=1)


class EvalSection(Strict):
    every_steps: int | None = Field(50, ge=1)  # None: once per epoch
    # validation loss always; ROUGE-L of greedy generations on the first N validation rows when N > 0
    generate_examples: int = Field(8, ge=0)
    max_new_tokens: int = Field(128, ge=1)
    best_metric: Literal["loss", "rouge_l"] = "loss"
    # a gate YAML (evals/gates/default.yaml): the checkpoint kept (and early stopping) is the one passing the
    # most of its rules that can be checked on the validation answers, then the best best_metric among those
    gate: str | None = None
    early_stopping_patience: int | None = Field(3, ge=1)  # evaluations without improvement; None disables


class OutputSection(Strict):
    name: str = Field("notes-student", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    hourly_rate_usd: float = Field(0.0, ge=0)  # for the cost estimate on the model card
    save_merged: bool = False  # also write base+adapter merged weights (full precision)


class SFTRunConfig(Strict):
    """First line of an SFT YAML says: assay train THIS.yaml"""

    recipe: Literal["sft"] = "sft"
    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    output: OutputSection = Field(default_factory=OutputSection)

    def problems(self) -> list[str]:
        """Cross-field problems, listed together with the field errors' style."""
        return _common_problems(self)


class TeacherSection(Strict):
    model: str | None = None  # logit mode: a local causal LM sharing the student's tokenizer
    alpha: float = Field(0.5, ge=0, le=1)  # weight of cross-entropy on the labels; 1 - alpha goes to the KL term
    temperature: float = Field(2.0, gt=0)
    # keep only the teacher's top-k log-probs per token (renormalised), cached per example after first use
    cache_top_k: int | None = Field(None, ge=1)


class CompressSection(Strict):
    keep_every: int | None = Field(None, ge=2)  # student = teacher with every k-th layer kept (DistilBERT style)


class DistillRunConfig(Strict):
    """First line of a distill YAML says: assay train THIS.yaml"""

    recipe: Literal["distill"] = "distill"
    # sequence: SFT on teacher outputs already in the dataset; logit: match a local teacher's distributions
    mode: Literal["sequence", "logit"] = "logit"
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    compress: CompressSection = Field(default_factory=CompressSection)
    model: ModelSection = Field(default_factory=ModelSection)  # the student; built from the teacher when compressing
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    output: OutputSection = Field(default_factory=lambda: OutputSection(name="notes-distilled"))

    def problems(self) -> list[str]:
        problems = _common_problems(self)
        if self.mode == "logit" and not self.teacher.model:
            problems.append("teacher.model: logit distillation needs a local teacher model")
        if self.mode == "sequence" and (self.teacher.model or self.compress.keep_every):
            problems.append("mode: sequence trains on the teacher outputs already in the dataset; "
                            "teacher.model and compress.keep_every apply to mode logit only")
        if self.teacher.cache_top_k and self.data.packing:
            problems.append("teacher.cache_top_k: caching is per example, so it needs data.packing: false")
        if self.compress.keep_every and "base" in self.model.model_fields_set and self.model.base != self.teacher.model:
            problems.append("model.base: with compress.keep_every the student is built from teacher.model; "
                            "remove model.base")
        if self.compress.keep_every and self.lora.enabled:
            problems.append("compress.keep_every: the layer-dropped student must train every weight; "
                            "set lora.enabled: false")
        return problems


def _common_problems(cfg: SFTRunConfig | DistillRunConfig) -> list[str]:
    problems = []
    if cfg.model.quantize != "none" and not cfg.lora.enabled:
        problems.append("model.quantize needs lora.enabled: a quantized base cannot be trained directly")
    if cfg.model.quantize != "none" and cfg.output.save_merged:
        problems.append("output.save_merged: merging into a 4/8-bit base loses precision; train with "
                        "model.quantize=none to merge, or keep the adapter only")
    train = cfg.train
    if train.batch_size == "auto" and "gradient_accumulation" in train.model_fields_set:
        problems.append("train.gradient_accumulation: batch_size auto chooses it (rows_per_step / micro-batch); "
                        "set train.rows_per_step instead")
    if train.batch_size == "auto" and cfg.model.gradient_checkpointing:
        # checkpointed layers keep their activations out of sight of the probe's saved-tensor hooks
        problems.append("train.batch_size: auto measures activations without gradient checkpointing; with "
                        "model.gradient_checkpointing give a number (e.g. train.batch_size=8)")
    if cfg.eval.best_metric == "rouge_l" and cfg.eval.generate_examples == 0:
        problems.append("eval.best_metric rouge_l needs eval.generate_examples > 0")
    if cfg.eval.gate and cfg.eval.generate_examples == 0:
        problems.append("eval.gate: its rules are checked on generated answers; set eval.generate_examples > 0 "
                        "or eval.gate=null")
    if cfg.eval.every_steps and cfg.train.save_steps % cfg.eval.every_steps:
        # the best checkpoint can only be kept if every evaluation has a checkpoint to point at
        problems.append(f"train.save_steps ({cfg.train.save_steps}) must be a multiple of "
                        f"eval.every_steps ({cfg.eval.every_steps}) to keep the best checkpoint")
    return problems


RECIPES: dict[str, type[SFTRunConfig] | type[DistillRunConfig]] = {
    "sft": SFTRunConfig,
    "distill": DistillRunConfig,
}
