"""The rows a synth run writes: one candidate row per teacher reply, and the new version's labeled rows.

`assemble` marks the chosen candidates, builds the student's messages and the lineage columns, and
keeps notes no teacher answered usefully as rejects with the most common reason.
"""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from assay.curation.synth.config import SynthConfig
from assay.curation.synth.contract import Reply, Teacher
from assay.curation.synth.pii import Guard
from assay.curation.synth.select import Group
from assay.curation.synth.tasks import Parsed, Prompt, Task
from assay.records import conform


def candidate_row(note_id: str, task: str, prompt_version: str, teacher: Teacher, reply: Reply, text: str | None,
                   parsed: Parsed, unknown_placeholders: int) -> dict:
    return {"note_id": note_id, "task": task, "teacher": teacher.spec, "prompt_version": prompt_version,
            "raw": text, "output": parsed.output, "ok": parsed.ok, "reason": parsed.reason,
            "finish_reason": reply.finish_reason, "error": reply.error,
            "input_tokens": reply.usage.get("input_tokens", 0), "output_tokens": reply.usage.get("output_tokens", 0),
            "cost_usd": reply.cost_usd, "cached": reply.cached, "remote": teacher.is_remote,
            "unrestored_placeholders": unknown_placeholders, "chosen": False, "score": None}


CANDIDATE_SCHEMA = {
    "note_id": pl.String, "task": pl.String, "teacher": pl.String, "prompt_version": pl.String, "raw": pl.String,
    "output": pl.String, "ok": pl.Boolean, "reason": pl.String, "finish_reason": pl.String, "error": pl.String,
    "input_tokens": pl.Int64, "output_tokens": pl.Int64, "cost_usd": pl.Float64, "cached": pl.Boolean,
    "remote": pl.Boolean, "unrestored_placeholders": pl.Int64, "chosen": pl.Boolean, "score": pl.Float64,
}


def assemble(df: pl.DataFrame, work: pl.DataFrame, consumed: pl.Series, groups: list[Group], choices: list,
              cand_rows: list[dict], task: Task, prompt: Prompt, cfg: SynthConfig, guard: Guard,
              ) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame]:
    instruction = task.student_instruction(prompt)
    per_note = len(cfg.teachers)
    outputs, teachers, agreement, detail, n_valid, written_by = [], [], [], [], [], []
    for n, (group, choice) in enumerate(zip(groups, choices)):
        for k, score in enumerate(choice.scores):
            cand_rows[n * per_note + k]["score"] = score
        if choice.index is not None:
            cand_rows[n * per_note + choice.index]["chosen"] = True
        chosen = group.candidates[choice.index] if choice.index is not None else None
        outputs.append(chosen.parsed.output if chosen else None)
        teachers.append(chosen.teacher if chosen else None)
        agreement.append(choice.agreement)
        detail.append(choice.detail)
        n_valid.append(len(group.valid()))
    inputs = [_student_input(r["title"], r["text"]) for r in work.select("title", "text").to_dicts()]
    messages = [json.dumps([{"role": "user", "content": f"{instruction}\n\n{i}"},
                            {"role": "assistant", "content": o}], ensure_ascii=False) if o else None
                for i, o in zip(inputs, outputs)]
    written_by = [r["teacher"] if r["synthetic"] else None for r in work.select("teacher", "synthetic").to_dicts()]
    labeled = work.with_columns(
        pl.lit(task.name).alias("task"), pl.lit(instruction).alias("instruction"),
        pl.Series("input", inputs, dtype=pl.String), pl.Series("output", outputs, dtype=pl.String),
        pl.Series("messages", messages, dtype=pl.String), pl.Series("teacher", teachers, dtype=pl.String),
        pl.lit(task.prompt_version).alias("prompt_version"),
        pl.col("synthetic").fill_null(False),
        pl.lit(None, dtype=pl.List(pl.String)).alias("reviewers"), pl.lit(None, dtype=pl.String).alias("decision"),
        pl.Series("agreement", agreement, dtype=pl.Float64), pl.lit(cfg.select).alias("selection"),
        pl.Series("selection_detail", detail, dtype=pl.String),
        pl.Series("valid_candidates", n_valid, dtype=pl.Int64), pl.lit(per_note).alias("candidates"),
        pl.Series("written_by", written_by, dtype=pl.String),
        *guard.columns(work["note_id"].to_list()).values(),
    )
    failed = labeled.filter(pl.col("output").is_null())
    rejects = None
    if failed.height:
        reasons = []
        for note_id in failed["note_id"].to_list():
            why = Counter(r["reason"] for r in cand_rows if r["note_id"] == note_id and r["reason"])
            reasons.append("no_valid_output:" + (why.most_common(1)[0][0] if why else "none"))
        rejects = failed.with_columns(pl.Series("reason", reasons, dtype=pl.String), pl.lit("synth").alias("step"))
    kept_rows = df.filter(~consumed)
    data = pl.concat([kept_rows, labeled.filter(pl.col("output").is_not_null())], how="diagonal_relaxed")
    return conform(data), rejects, pl.DataFrame(cand_rows, schema=CANDIDATE_SCHEMA)


def _student_input(title: str | None, text: str | None) -> str:
    return f"{title}\n\n{text}" if title else (text or "")


def failure_counts(candidates: pl.DataFrame) -> dict[str, int]:
    """Candidates that gave no output, per reason family ("teacher_error:<fault>" keeps its fault)."""
    counts: Counter = Counter()
    for reason in candidates.filter(pl.col("reason").is_not_null())["reason"].to_list():
        counts[reason if reason.startswith("teacher_error:") else reason.split(":", 1)[0]] += 1
    return dict(sorted(counts.items()))


def outputs_by_cell(manifest: dict, plans: list, data: pl.DataFrame, work: pl.DataFrame) -> dict[str, int]:
    """Per gap cell: how many rows this run labeled (real notes that lacked an output, and new notes)."""
    if not plans:
        return {}
    labeled = set(data.filter(pl.col("note_id").is_in(work["note_id"].to_list()))["note_id"].to_list())
    out = {}
    for plan in plans:
        real = sum(1 for n in plan.note_ids if n in labeled)
        new = data.filter(pl.col("synthetic") & pl.col("note_id").is_in(list(labeled))
                          & pl.col("metadata").str.contains(json.dumps(plan.key), literal=True)).height
        out[plan.key] = real + new
    return out
