"""Batches without cross-example attention and without one giant row: packing per row, padding as its own block.

TRL's packing flattens a whole batch into one sequence (padding-free), which is what FlashAttention's
varlen kernels want. Under SDPA or eager attention that one row costs O((batch x max_seq_length)^2)
attention memory: measured at 19 GB peak on CPU for batch 8 x 512. So without FlashAttention the
recipe packs examples into rows of `max_seq_length` (best-fit decreasing) and collates row by row:
position ids restart at each example and at the padding, no attention mask is passed, and
transformers builds a block-diagonal causal mask per row from the position ids. Attention memory
is then bounded by batch x max_seq_length^2, like plain dynamic padding.

transformers reads packing from position ids only when no KV cache is in play, so the forward must
get use_cache=False; both trainers pass it (TRL's SFTTrainer and DistillTrainer).

Each batch also carries `real_tokens` (its non-padding token count): the trainer takes it out before
the forward and adds it up for tokens/s, for training batches only.
"""

from __future__ import annotations

import torch

from assay.training.data import IGNORE


def pack_rows(dataset, max_seq_length: int):
    """Best-fit-decreasing packing of tokenized examples into rows of at most `max_seq_length` tokens."""
    from trl.data_utils import pack_dataset

    return pack_dataset(dataset.select_columns(["input_ids", "labels"]), max_seq_length, "bfd", {})


class RowCollator:
    """Right-pads rows; each packed example and the padding get their own position block."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        position_ids = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.tensor(example["input_ids"])
            labels[row, :n] = torch.tensor(example["labels"])
            lengths = example.get("seq_lengths") or [n]
            position_ids[row, :n] = torch.cat([torch.arange(length) for length in lengths])
            position_ids[row, n:] = torch.arange(width - n)
        labels[position_ids == 0] = IGNORE  # no example predicts the first token of the next
        real = torch.tensor(sum(len(e["input_ids"]) for e in examples))
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "real_tokens": real}
