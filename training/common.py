"""Helpers the recipes share: device and precision, the base model, LoRA, logs, clear failures."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

from assay.errors import AssayError, ModelUnavailableError
from assay.training.config import LoraSection, ModelSection, TrainSection

LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "polars")


class TrainingError(AssayError):
    """A run that cannot start or finish here, with the knob that fixes it."""


# ---------------------------------------------------------------- where and how it runs

def device_kind() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_name() -> str:
    import torch

    kind = device_kind()
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if kind == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)} x{max(processes, 1)}"
    if kind == "mps":
        return "mps: Apple GPU"
    per = f"{torch.get_num_threads()} threads" + (f" x {processes} processes" if processes > 1 else "")
    return f"cpu: {platform.processor() or platform.machine()} ({per})"


def environment_problems(model: ModelSection) -> list[str]:
    """What this machine cannot do for the config; checked before any model loads."""
    import importlib.util

    problems = []
    kind = device_kind()
    if model.quantize != "none":
        if kind != "cuda":
            problems.append(f"model.quantize: {model.quantize} (QLoRA) needs a CUDA GPU and this machine has {kind} "
                            "only; set model.quantize=none (small bases train in full precision on CPU)")
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append(f"model.quantize: {model.quantize} needs the bitsandbytes package: "
                            "pip install bitsandbytes")
    if model.precision == "bf16" and kind == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            problems.append("model.precision: bf16 is not supported by this GPU; use fp16 or auto")
    if model.precision == "fp16" and kind == "cpu":
        problems.append("model.precision: fp16 training needs a GPU; use auto or fp32 on CPU")
    if model.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        problems.append("model.attn_implementation: flash_attention_2 needs the flash-attn package and a CUDA GPU")
    return problems


def precision(model: ModelSection) -> tuple[bool, bool]:
    """(bf16, fp16) mixed-precision flags for the trainer."""
    import torch

    if model.precision == "bf16":
        return True, False
    if model.precision == "fp16":
        return False, True
    if model.precision == "auto" and device_kind() == "cuda":
        return (True, False) if torch.cuda.is_bf16_supported() else (False, True)
    return False, False  # CPU: fp32; autocast to bf16 on CPU is slower on most CPUs


# ---------------------------------------------------------------- several processes (accelerate launch, torchrun)
# Every process runs the recipe; only the main one writes the run folder, the log, the version and the
# registry row. The others wait at the same points, so nobody reads a folder another process is changing.

def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def from_main_process(value):
    """The main process's `value`, on every process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def library_versions(libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in libraries:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


# ---------------------------------------------------------------- the base model

def load_base(model_cfg: ModelSection, *, for_training: bool = True):
    """The base causal LM and its tokenizer, through the catalogue; quantized when asked (QLoRA).

    Weights load in fp32 unless bf16 is in use on a GPU: LoRA adapters and full fine-tuning keep
    fp32 master weights, and fp32 is the fast path on CPU anyway.
    """
    import torch

    from assay.models import CATALOGUE, load_causal_lm, model_path

    bf16, _ = precision(model_cfg)
    dtype = torch.bfloat16 if bf16 else torch.float32
    try:
        if model_cfg.quantize == "none" and model_cfg.attn_implementation == "auto":
            model, tokenizer = load_causal_lm(model_cfg.base, dtype=dtype)
        else:
            model, tokenizer = _load_with_options(model_cfg, dtype, model_path if model_cfg.base in CATALOGUE else None)
    except ModelUnavailableError as exc:
        raise TrainingError(f"model.base {model_cfg.base!r} cannot be loaded here: {exc}. "
                            f"Catalogue models that work offline: {', '.join(_causal_catalogue())}") from exc
    except OSError as exc:
        raise TrainingError(f"model.base {model_cfg.base!r} cannot be loaded: {exc}. "
                            f"Catalogue models that work offline: {', '.join(_causal_catalogue())}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"model.base {model_cfg.base!r} has no chat template; the recipe renders examples "
                            "with it. Use an instruct/chat model (e.g. smollm2-135m-instruct)")
    if model_cfg.quantize != "none" and for_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=model_cfg.gradient_checkpointing)
    return model, tokenizer


def _load_with_options(model_cfg: ModelSection, dtype, resolve):
    """Loading with what the catalogue loader does not take: a bitsandbytes config, an attention kernel."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(resolve(model_cfg.base)) if resolve else model_cfg.base
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if model_cfg.quantize != "none":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if dtype == torch.bfloat16 else torch.float16
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
            if model_cfg.quantize == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
        kwargs["device_map"] = {"": 0}
    if model_cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    return model, AutoTokenizer.from_pretrained(source, local_files_only=True)


def _causal_catalogue() -> list[str]:
    from assay.models import CATALOGUE

    return [name for name, entry in CATALOGUE.items() if entry.kind == "causal-lm"]


def lora_config(lora: LoraSection):
    from peft import LoraConfig

    return LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, bias="none", task_type="CAUSAL_LM")


def architecture(model) -> str:
    """What makes two trained models incomparable without a major version bump."""
    cfg = model.config.get_text_config()
    return (f"{cfg.model_type}:layers={cfg.num_hidden_layers}:hidden={cfg.hidden_size}"
            f":vocab={cfg.vocab_size}")


def trainer_args(train: TrainSection, model: ModelSection, *, output_dir: Path, has_eval: bool,
                 eval_cfg, max_seq_length: int, packing: bool, **extra):
    """The SFTConfig both recipes start from: seeds, schedule, checkpoints, evaluation, best checkpoint."""
    from trl import SFTConfig

    bf16, fp16 = precision(model)
    # batch_size auto: one row at a time until training.memory has measured what fits (apply_choice)
    micro, accumulation = ((1, train.rows_per_step) if train.batch_size == "auto"
                           else (train.batch_size, train.gradient_accumulation))
    # with a gate, training.gatecheck ranks checkpoints: most validation rules passed, then best_metric
    best = ("eval_gate_rank" if eval_cfg.gate else "eval_rouge_l" if eval_cfg.best_metric == "rouge_l"
            else "eval_loss")
    eval_every = eval_cfg.every_steps
    eval_kwargs: dict[str, Any] = {"eval_strategy": "no"}
    if has_eval:
        eval_kwargs = {
            "eval_strategy": "steps" if eval_every else "epoch",
            "eval_steps": eval_every,
            "load_best_model_at_end": True,
            "metric_for_best_model": best,
            "greater_is_better": best != "eval_loss",
        }
    return SFTConfig(
        output_dir=str(output_dir),
        seed=train.seed,
        data_seed=train.seed,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.schedule,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        bf16=bf16,
        fp16=fp16,
        use_cpu=device_kind() == "cpu",
        activation_checkpointing=model.gradient_checkpointing,
        max_length=max_seq_length,
        packing=packing,
        packing_strategy="bfd",
        save_strategy="steps" if (eval_every or not has_eval) else "epoch",
        save_steps=train.save_steps,
        save_total_limit=2,  # the last and the best survive; resume needs only the last
        logging_steps=train.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=True,
        **eval_kwargs,
        **extra,
    )


# ---------------------------------------------------------------- logs and metrics

def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cut_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint a resumed run restarts from)."""
    rows = [r for r in read_log(path) if r["step"] <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# ---------------------------------------------------------------- failures a person can act on

def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError))


def oom_error(exc: BaseException, cfg) -> TrainingError:
    data, train, model = cfg.data, cfg.train, cfg.model
    knobs = []
    if train.batch_size == "auto":
        knobs.append("a smaller train.memory_gb (batch_size auto measured the model, not what else runs here)")
    elif train.batch_size > 1:
        knobs.append(f"train.batch_size={max(1, train.batch_size // 2)} "
                     f"train.gradient_accumulation={train.gradient_accumulation * 2} (same effective batch)")
    if data.max_seq_length > 256:
        knobs.append(f"data.max_seq_length={data.max_seq_length // 2}")
    if not model.gradient_checkpointing:
        knobs.append("model.gradient_checkpointing=true")
    if model.quantize == "none" and device_kind() == "cuda" and cfg.lora.enabled:
        knobs.append("model.quantize=4bit")
    if cfg.lora.enabled and cfg.lora.rank > 8:
        knobs.append(f"lora.rank={cfg.lora.rank // 2}")
    hint = "; ".join(knobs) or "a smaller model.base"
    return TrainingError(f"out of memory on {device_name()} ({type(exc).__name__}). Try: {hint}")
