"""The completion head: logits only at the positions that have a label, and the trainer that uses it.

TRL's SFTTrainer patches the model with a fused LM head. On CUDA/XPU its Triton kernel projects only
the labelled positions. Elsewhere (CPU, MPS) it scores *every* position in torch tiles, computes
entropy and top-1 flags over the whole vocabulary alongside, and projects again in backward; measured
on CPU at 0.84x the tokens/s of a plain Trainer + PEFT script. With completion-only labels most
positions have no label, so here the backbone runs once, the hidden states whose next token is
labelled are gathered, and only those rows go through the LM head and torch's cross-entropy.

    model(**batch, completion_head=True) -> CompletionOutput(loss, logits (tokens, vocab), labels (tokens,))

The rows of `logits` are the labelled positions in row-major order: `full_logits[:, :-1][mask]` with
`mask = labels[:, 1:] != -100`. Distillation compares student and teacher on exactly these rows.
The patch goes on the model itself (under PEFT and any DDP wrapper), so `model(...)` still passes
through the wrappers: gradients are synchronised as usual.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput
from trl import SFTTrainer

from assay.training.data import IGNORE

# output scalings the head would have to re-apply; models with any of them keep TRL's path
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


@dataclass
class CompletionOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (labelled tokens, vocab), float32
    labels: torch.Tensor | None = None  # (labelled tokens,)


def supports_completion_head(model) -> bool:
    config = model.config.get_text_config()
    return all(getattr(config, name, None) in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS)


def add_completion_head(model) -> None:
    """Patch `model.forward` to take `completion_head=True`; without it the forward is the previous one."""
    if getattr(model, "_assay_completion_head", False):
        return
    previous = model.forward

    @functools.wraps(type(model).forward)  # generate() checks its kwargs against this signature
    def forward(self, *args, completion_head: bool = False, labels=None, num_items_in_batch=None, **kwargs):
        if not completion_head:
            if labels is not None:
                kwargs["labels"] = labels
            if num_items_in_batch is not None:
                kwargs["num_items_in_batch"] = num_items_in_batch
            return previous(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        head = self.get_output_embeddings()
        target = labels[:, 1:].to(head.weight.device)
        mask = target != IGNORE
        logits = head(hidden.to(head.weight.device)[mask]).float()
        target = target[mask]
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        loss = F.cross_entropy(logits, target, reduction="sum") / count
        return CompletionOutput(loss=loss, logits=logits, labels=target)

    model.forward = types.MethodType(forward, model)
    model._assay_completion_head = True


def inner_model(model):
    """The transformers model under a PEFT wrapper (where the patch must go)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class RecipeTrainer(SFTTrainer):
    """SFTTrainer whose loss goes through the completion head where TRL's kernel would score every position."""

    def __init__(self, *args, **kwargs):
        from trl.kernels.chunked_logprob import _use_triton

        super().__init__(*args, **kwargs)
        model = inner_model(self.model)
        self.completion_head = supports_completion_head(model)
        if self.completion_head:
            add_completion_head(model)
        # on Triton devices TRL's fused kernel is the better path for plain SFT: it never builds the logits
        self.sft_head = self.completion_head and not _use_triton(self.args.device)
        self.real_tokens = 0  # non-padding training tokens of this process (RowCollator batches)

    def tokens_seen(self) -> int | None:
        """Real training tokens over every process, or None when the batches do not say (TRL's collator)."""
        if not self.real_tokens:
            return None
        local = torch.tensor(self.real_tokens, device=self.args.device)
        return int(self.accelerator.reduce(local, reduction="sum").item())

    def _take_real_tokens(self, inputs) -> None:
        real = inputs.pop("real_tokens", None)
        if real is not None and self.model.training:
            self.real_tokens += int(real)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._take_real_tokens(inputs)
        if not self.sft_head:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        outputs = model(**inputs, completion_head=True, num_items_in_batch=num_items_in_batch)
        loss = self._scale_for_ranks(outputs.loss, num_items_in_batch)
        self._record(outputs, inputs)
        return (loss, outputs) if return_outputs else loss

    def _scale_for_ranks(self, loss, num_items_in_batch):
        """Like Trainer.compute_loss: num_items_in_batch counts every rank's tokens and DDP averages gradients."""
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return loss

    def _record(self, outputs: CompletionOutput, inputs) -> None:
        """The metrics TRL logs (token accuracy, tokens seen), from the labelled rows only."""
        mode = "train" if self.model.training else "eval"
        with torch.no_grad():
            correct = (outputs.logits.argmax(-1) == outputs.labels).sum()
            count = torch.tensor(outputs.labels.numel(), device=correct.device)
            correct = self.accelerator.gather_for_metrics(correct).sum()
            count = self.accelerator.gather_for_metrics(count).sum()
        self._metrics[mode]["mean_token_accuracy"].append((correct / count).item() if count > 0 else 0.0)
        if mode == "train":
            local = inputs["attention_mask"].sum() if "attention_mask" in inputs else torch.tensor(
                inputs["input_ids"].numel(), device=inputs["input_ids"].device)
            self._total_train_tokens += self.accelerator.gather_for_metrics(local).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
