"""`train.batch_size: auto`: the largest micro-batch that fits `train.memory_gb`, from a probe of the real model.

Training memory is a fixed part (weights, libraries, optimizer state: what the process holds once the
trainer exists) plus a part per row of the micro-batch (the activations autograd keeps for backward,
and the backward's transients). The per-row part is measured, not guessed: one forward of the real
training path (the PEFT model, the completion head, a real packed row of the training data) under
`torch.autograd.graph.saved_tensors_hooks` adds up every tensor saved for backward, each storage once,
weights excluded. The peak per row is that sum times PEAK_PER_SAVED, measured on CPU (see
benchmarks/README.md, "Training memory"): for SmolLM2-135M, 512-token rows, the probe counts 699 MB
a row and the process peak rose by 1,379 MB a row from 1 to 4 rows (1.97x): the gradients of the
activations alive during backward and the allocator's slack.

The fixed part is read after the probe, once garbage is collected and the C allocator has handed its free
pages back (`release`): the first training forward leaves buffers resident (0.68 GB for SmolLM2 at 512
tokens: RSS 1.09 GB before the probe, 1.77 GB after it), so reading it before the probe underestimated
every run by that much (a CI run peaked at 4.28 GB under a 4.21 GB budget).

The micro-batch is the largest divisor of the rows per optimizer step (`batch_size x
gradient_accumulation` stays what the config says, so the training does not depend on the machine)
whose estimate fits the budget; gradient accumulation makes up the rest.
"""

from __future__ import annotations

import ctypes
import gc
import os
from dataclasses import dataclass

from assay.errors import ConfigError

PEAK_PER_SAVED = 2.0  # measured 1.97: peak RSS added per row / saved-for-backward bytes per row (CPU, fp32)
# headroom above fixed + rows for evaluation, checkpoint writes and the allocator: with the fixed part read
# after the probe and memory released each step, 2-step runs of 1 row x 4 (512-token rows) peaked 0.10 to
# 0.38 GB above fixed + one row (tests/test_quality.py); the reserve keeps that margin and as much again
RESERVE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Choice:
    micro_batch: int
    accumulation: int
    budget_bytes: int
    fixed_bytes: int
    per_row_bytes: int
    budget_source: str
    row_tokens: int = 0

    def estimate(self, rows: int | None = None) -> int:
        return self.fixed_bytes + RESERVE_BYTES + (rows or self.micro_batch) * self.per_row_bytes

    def describe(self) -> str:
        gb = 2**30
        return (f"train.batch_size auto: micro-batch {self.micro_batch} x {self.accumulation} accumulation "
                f"(estimated peak {self.estimate() / gb:.2f} GB of a {self.budget_bytes / gb:.2f} GB budget, "
                f"{self.budget_source}; fixed {self.fixed_bytes / gb:.2f} GB + {self.per_row_bytes / 2**20:.0f} "
                f"MB per row of {self.row_tokens} tokens)")


def budget(memory_gb: float | None) -> tuple[int, str]:
    """Bytes the run may use: train.memory_gb, else 80% of what the device has free now."""
    if memory_gb is not None:
        return int(memory_gb * 2**30), f"train.memory_gb {memory_gb:g}"
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(0.8 * free), "80% of the GPU's free memory"
    import psutil

    return int(0.8 * psutil.virtual_memory().available), "80% of the memory available now"


def resident_bytes() -> int:
    """What the process holds now: RSS on CPU, allocated memory on a GPU."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated()
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def release() -> None:
    """Collect garbage and give the C allocator's free pages back to the system (glibc's malloc_trim).

    Without it, RSS keeps the high-water mark of every evaluation and step that came before (measured:
    3.4 GB held between steps of a 1-row run whose live memory was 1.9 GB), so the process looks bigger
    than it is to the budget and to everything else on the machine. Elsewhere than glibc only the collection.
    """
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def saved_bytes(trainer, batch: dict) -> int:
    """Bytes autograd keeps for backward in one training forward of `batch` (each storage once, no weights)."""
    import torch

    model = trainer.model
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    weights |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights and storage.device.type != "meta":
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = trainer.compute_loss(model, {k: v.to(trainer.args.device) if hasattr(v, "to") else v
                                                for k, v in batch.items()})
        del loss  # no backward: the graph and its saved tensors go with it
    finally:
        model.train(was_training)
    return sum(seen.values())


def choose(trainer, probe_row: dict, *, rows_per_step: int, memory_gb: float | None) -> Choice:
    """The micro-batch for this run, or ConfigError when not even one row fits."""
    available, source = budget(memory_gb)
    _touch_weights(trainer.model)
    per_row = int(PEAK_PER_SAVED * saved_bytes(trainer, trainer.data_collator([probe_row])))
    release()
    fixed = resident_bytes()  # after the probe: what a training forward leaves resident counts as fixed
    fits = [d for d in range(1, rows_per_step + 1)
            if rows_per_step % d == 0 and fixed + RESERVE_BYTES + d * per_row <= available]
    choice = Choice(max(fits, default=0), 0, available, fixed, per_row, source,
                    row_tokens=len(probe_row["input_ids"]))
    if not fits:
        raise ConfigError("train.memory_gb", [
            f"train.batch_size auto: one row of {choice.row_tokens} tokens needs about "
            f"{choice.estimate(1) / 2**30:.2f} GB and the budget is {available / 2**30:.2f} GB ({source}); "
            "raise train.memory_gb, lower data.max_seq_length, or set train.batch_size=1 "
            "model.gradient_checkpointing=true"])
    return Choice(choice.micro_batch, rows_per_step // choice.micro_batch, available, fixed, per_row, source,
                  row_tokens=choice.row_tokens)


def _touch_weights(model) -> None:
    """Read every weight once: safetensors are memory-mapped, and pages count in RSS only once read
    (before this the process measured 0.6 GB where training holds 1.2 GB before any activation)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.detach().sum()


def plan_batch(trainer, train) -> dict:
    """Apply batch_size auto to the trainer's arguments; what was chosen, for the metrics and the log line."""
    args = trainer.args
    micro, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
    if train.batch_size != "auto":
        return {"micro_batch": micro, "gradient_accumulation": accumulation,
                "note": f"micro-batch {micro} x {accumulation} accumulation"}
    rows = trainer.train_dataset["input_ids"]
    probe = trainer.train_dataset[max(range(len(rows)), key=lambda i: len(rows[i]))]  # the longest row
    choice = choose(trainer, {k: probe[k] for k in probe if k in ("input_ids", "labels", "seq_lengths")},
                    rows_per_step=train.rows_per_step, memory_gb=train.memory_gb)
    args.per_device_train_batch_size = args.per_device_eval_batch_size = choice.micro_batch
    args.gradient_accumulation_steps = choice.accumulation
    trainer._train_batch_size = args.train_batch_size  # Trainer copies it at init; the dataloader reads the copy
    return {"micro_batch": choice.micro_batch, "gradient_accumulation": choice.accumulation,
            "memory_budget_gb": round(choice.budget_bytes / 2**30, 2),
            "estimated_peak_gb": round(choice.estimate() / 2**30, 2),
            "memory_fixed_gb": round(choice.fixed_bytes / 2**30, 2),
            "memory_per_row_mb": round(choice.per_row_bytes / 2**20), "note": choice.describe()}


def plan_steps(trainer, train) -> dict:
    """Raise the epochs to reach train.min_steps optimizer steps (max_steps, when set, wins)."""
    import math

    args = trainer.args
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rows_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    per_epoch = max(1, math.ceil(len(trainer.train_dataset) / rows_per_step))
    if train.max_steps:
        return {"note": f"{train.max_steps} steps (train.max_steps)"}
    by_epochs = math.ceil(train.epochs * per_epoch)
    if train.min_steps and by_epochs < train.min_steps:
        args.max_steps = train.min_steps
        return {"note": f"{train.min_steps} steps (train.min_steps; {train.epochs:g} epochs would be {by_epochs} "
                        f"steps of {rows_per_step} rows, {train.min_steps / per_epoch:.1f} epochs instead)"}
    return {"note": f"{by_epochs} steps ({train.epochs:g} epochs of {per_epoch} steps)"}
