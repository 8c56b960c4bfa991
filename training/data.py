"""From a dataset version to token ids a trainer can use: chat template, completion-only labels, bounded length.

Two measured failure modes are designed out here. Padding every example to the maximum length with
labels over the padding, in an ad-hoc "### Response:" format, made SmolLM2 worse than zero-shot; so
examples are rendered with the model's own chat template, only the completion carries labels, and
batches are padded dynamically (or packed) by the trainer. One 1,374-token example took a recipe
without truncation to 17.8 GB; so every example is cut to `max_seq_length` here, the note text first
and the answer last, and the cuts are counted and reported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from assay.curation.synth.tasks import TASKS
from assay.errors import InputError
from assay.store import Version

# Rows that carry input/output but no instruction get one from their task. A summary from an export is asked
# for with the summarize task's own instruction, which states its length contract ("one or two sentences"):
# the instruction synthetic rows carry and evals ask with. Asked "Summarize the following note.", the base
# model wrote 3+ sentences and a student trained on two-sentence references still did in a third of its
# answers (benchmarks/README.md: "Training quality")
TASK_INSTRUCTIONS = {
    "summarize": TASKS["summarize"].instruction,
    "title": "Write a short title for the following note.",
    "tags": "Suggest a few tags for the following note, comma separated.",
    "extract_actions": "List the action items in the following note.",
}
IGNORE = -100
ELLIPSIS = " [...]"


@dataclass
class Example:
    """One row as chat messages: the prompt turns and the reference answer."""

    note_id: str | None
    prompt: list[dict[str, str]]
    completion: str


@dataclass
class Encoded:
    rows: list[dict[str, list[int]]]  # input_ids, labels
    examples: list[Example]  # aligned with rows
    stats: dict[str, Any] = field(default_factory=dict)


def load_splits(version: Version, *, task: str | None = None, limit: int | None = None
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train and validation rows of a dataset version (filtered by task when given)."""
    df = version.data()
    if "split" not in df.columns:
        raise InputError("dataset has no 'split' column; run `assay curate` (its split step) first",
                         file=str(version.path / "data.parquet"), field="split")
    if task is not None:
        if "task" not in df.columns:
            raise InputError(f"data.task is {task!r} but the dataset has no 'task' column",
                             file=str(version.path / "data.parquet"), field="task")
        df = df.filter(pl.col("task") == task)
    train = df.filter(pl.col("split") == "train")
    if limit is not None:
        train = train.head(limit)
    return train, df.filter(pl.col("split") == "validation")


def to_examples(df: pl.DataFrame, system_prompt: str | None = None) -> tuple[list[Example], Counter]:
    """Rows as chat examples; rows that cannot become one are counted by reason, never silently lost."""
    examples, dropped = [], Counter()
    for row in df.iter_rows(named=True):
        example, reason = _row_to_example(row, system_prompt)
        if example is None:
            dropped[reason] += 1
        else:
            examples.append(example)
    return examples, dropped


def _row_to_example(row: dict[str, Any], system_prompt: str | None) -> tuple[Example | None, str]:
    note_id = row.get("note_id")
    if row.get("decision") == "rejected":  # a reviewer discarded it in `assay review`
        return None, "rejected_in_review"
    if row.get("messages"):
        try:
            messages = json.loads(row["messages"])
        except json.JSONDecodeError:
            return None, "bad_messages_json"
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages):
            return None, "bad_messages_shape"
        if messages[-1]["role"] != "assistant" or not str(messages[-1]["content"]).strip():
            return None, "no_final_assistant_turn"
        prompt = [{"role": m["role"], "content": str(m["content"])} for m in messages[:-1]]
        if system_prompt and prompt and prompt[0]["role"] != "system":
            prompt.insert(0, {"role": "system", "content": system_prompt})
        return Example(note_id, prompt, str(messages[-1]["content"])), ""
    output = row.get("output")
    if not output or not output.strip():
        return None, "no_output"
    instruction = row.get("instruction") or TASK_INSTRUCTIONS.get(row.get("task") or "")
    if not instruction:
        return None, "no_instruction"
    source = row.get("input") or row.get("text") or ""
    user = f"{instruction}\n\n{source}" if source.strip() else instruction
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": user}]
    return Example(note_id, prompt, output), ""


def encode(examples: list[Example], tokenizer, max_seq_length: int) -> Encoded:
    """Token ids with labels on the completion only, each example at most `max_seq_length` tokens.

    When an example is too long the last prompt turn (the note) is shortened first, keeping at least
    half the budget for the answer; an answer longer than what is left is cut (it then teaches no stop).
    """
    rows, kept, lengths = [], [], []
    counts: Counter = Counter()
    for example in examples:
        prompt_ids, completion_ids = render_ids(tokenizer, example.prompt, example.completion)
        lengths.append(len(prompt_ids) + len(completion_ids))
        if len(prompt_ids) + len(completion_ids) > max_seq_length:
            answer_budget = min(len(completion_ids), max(max_seq_length // 2, max_seq_length - len(prompt_ids)))
            if len(prompt_ids) > max_seq_length - answer_budget:
                shortened = _shorten_prompt(tokenizer, example, max_seq_length - answer_budget)
                if shortened is None:
                    counts["dropped_prompt_too_long"] += 1
                    continue
                # the example keeps the prompt it was trained on, so evaluation generates from the same
                prompt_ids, example = shortened
                counts["truncated_input"] += 1
            room = max_seq_length - len(prompt_ids)
            if len(completion_ids) > room:
                completion_ids = completion_ids[:room]
                counts["truncated_completion"] += 1
        rows.append({"input_ids": prompt_ids + completion_ids,
                     "labels": [IGNORE] * len(prompt_ids) + completion_ids})
        kept.append(example)
    stats = {
        "examples": len(rows),
        "truncated_input": counts["truncated_input"],
        "truncated_completion": counts["truncated_completion"],
        "dropped_prompt_too_long": counts["dropped_prompt_too_long"],
        "longest_tokens_before_truncation": max(lengths, default=0),
        "tokens": sum(len(r["input_ids"]) for r in rows),
        "completion_tokens": sum(sum(1 for t in r["labels"] if t != IGNORE) for r in rows),
        "max_seq_length": max_seq_length,
    }
    return Encoded(rows, kept, stats)


def render_prompt(tokenizer, prompt: list[dict[str, str]]) -> str:
    """The prompt as the model sees it at inference: chat template plus the assistant header."""
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def render_ids(tokenizer, prompt: list[dict[str, str]], completion: str) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) exactly as training labels them; evals score perplexity on the same."""
    prompt_text = render_prompt(tokenizer, prompt)
    full_text = tokenizer.apply_chat_template(
        prompt + [{"role": "assistant", "content": completion}], tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    # the completion starts where the two diverge (tokens may merge across the boundary)
    split = 0
    for a, b in zip(prompt_ids, full_ids):
        if a != b:
            break
        split += 1
    if not full_text.startswith(prompt_text) or split == len(full_ids):
        raise InputError("the model's chat template does not render the prompt as a prefix of "
                         "prompt + answer; completion-only loss needs that", field="chat_template")
    return full_ids[:split], full_ids[split:]


def _shorten_prompt(tokenizer, example: Example, budget: int) -> tuple[list[int], Example] | None:
    """Cut the end of the last prompt turn (the note) until the rendered prompt fits in `budget` tokens."""
    last = example.prompt[-1]["content"]
    note_ids = tokenizer(last, add_special_tokens=False)["input_ids"]
    keep = len(note_ids)
    for _ in range(4):  # re-rendering shifts a few tokens at the boundary; converge in a few rounds
        text = tokenizer.decode(note_ids[:keep]) + (ELLIPSIS if keep < len(note_ids) else "")
        prompt = example.prompt[:-1] + [{**example.prompt[-1], "content": text}]
        ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        if len(ids) <= budget:
            return ids, Example(example.note_id, prompt, example.completion)
        keep -= len(ids) - budget + 2
        if keep <= 0:
            return None
    return None


def refuse_small(train_rows: int, val_rows: int, dropped: Counter, minimum: int, dataset: str) -> None:
    """An empty or tiny training set is refused with the counts, before any model is loaded."""
    if train_rows >= minimum:
        return
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) or "none dropped"
    raise InputError(
        f"dataset {dataset} has {train_rows} usable train example(s) and {val_rows} validation "
        f"example(s) (dropped: {why}); at least {minimum} are needed (data.min_train_examples). "
        "Curate more notes, or lower data.min_train_examples for a smoke run.")
