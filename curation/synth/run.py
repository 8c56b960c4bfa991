"""`assay synth`: label a dataset version's notes with teachers, choose one output per note, write a new version.

    notes ──(fill gaps: write notes for thin cells, clean, dedupe, cross-dedupe)──▶ notes + synthetic
          ──render task × teacher (redacted for remote teachers)──▶ run_requests (cache, ledger, budget)
          ──restore, parse──▶ candidates ──select──▶ output + agreement ──▶ version (parents=[input])

Every reply is cached the moment it arrives, so a killed run resumes on rerun without paying twice,
and rerunning with only another selection strategy makes no new generation calls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from assay.curation.config import SplitConfig
from assay.curation.pipeline import Tracker, no_progress
from assay.curation.splits import assign_synthetic_splits
from assay.curation.synth import gaps as gapfill
from assay.curation.synth.assemble import (
    CANDIDATE_SCHEMA,  # noqa: F401  (tests/review and bench_review read it here)
    assemble,
    candidate_row,
    failure_counts,
    outputs_by_cell,
)
from assay.curation.synth.bookkeeping import Calls
from assay.curation.synth.config import ALIASES, SynthConfig
from assay.curation.synth.contract import MissingKeyError, Reply, Request, Teacher
from assay.curation.synth.limits import Limits
from assay.curation.synth.pii import Guard, fill_surrogates, guard_for
from assay.curation.synth.prices import PriceTable
from assay.curation.synth.registry import get_teacher
from assay.curation.synth.runner import estimate, open_state, run_requests
from assay.curation.synth.select import Candidate, Group, SelectContext, get_strategy, judge_requests
from assay.curation.synth.tasks import WRITE_NOTE, Labels, Parsed, Prompt, Task, get_task
from assay.errors import ConfigError
from assay.project import Project
from assay.records import conform
from assay.redact import mask_urls, mask_urls_in
from assay.store import DatasetStore, Version


@dataclass
class SynthRun:
    version: Version | None  # None for a dry run
    estimate: dict  # per teacher and in total: requests, cached, to_send, tokens, cost_usd, cost_known
    manifest: dict = field(default_factory=dict)  # the synth fields written into the manifest


# -- teachers and the calls to them

class _PriceOnly:
    """Stands in for a remote teacher in a dry run when its API key is not set: estimates need only the price."""

    is_remote, batch_size = True, 1

    def __init__(self, spec: str, prices: PriceTable):
        self.spec = spec
        self.provider, _, self.model = spec.partition(":")
        self.price = prices.lookup(self.provider, self.model)


class Session:
    """Teachers, cache, ledger, limits and budget shared by the phases of one synth run."""

    def __init__(self, cfg: SynthConfig, project: Project, track: Tracker, injected: dict[str, Teacher] | None):
        self.cfg, self.track = cfg, track
        self.prices = PriceTable(cfg.prices)
        self.cache, self.ledger = open_state(project)
        self.calls = Calls()
        self.run_id = uuid.uuid4().hex[:12]  # one run in the ledger: a shared budget counts all its teachers
        self._kept: dict[str, Teacher] = dict(injected or {})
        self._limits: dict[str, Limits] = {}

    def teacher(self, spec: str, *, dry_run: bool = False) -> Teacher:
        """Local and rule teachers are kept (the model loads once); remote ones are made per phase,
        since their SDK clients belong to the event loop of the phase."""
        if spec in self._kept:
            return self._kept[spec]
        try:
            teacher = get_teacher(spec, prices=self.prices)
        except MissingKeyError:
            if not dry_run:
                raise
            return _PriceOnly(mask_urls(spec), self.prices)  # type: ignore[return-value]
        if not teacher.is_remote:
            self._kept[spec] = teacher
        return teacher

    def limits(self, provider: str) -> Limits:
        if provider not in self._limits:
            self._limits[provider] = Limits.for_provider(provider, self.cfg.limits.get(provider))
        return self._limits[provider]

    def run(self, jobs: list[tuple[Teacher, list[Request], str]]) -> list[list[Reply]]:
        """Run each (teacher, requests, label) through run_requests; replies per job, in request order."""

        async def one(teacher: Teacher, requests: list[Request], label: str, budget: float | None) -> list[Reply]:
            advance = self.track(f"{label} {teacher.spec}", len(requests))
            seen = [0]

            def progress(done: int, total: int) -> None:
                if done > seen[0]:
                    advance(done - seen[0])
                    seen[0] = done

            batch = self.cfg.batch and hasattr(teacher, "submit_batch")  # local and rule teachers have none
            replies = await run_requests(teacher, requests, cache=self.cache, ledger=self.ledger,
                                         limits=self.limits(teacher.provider), budget_usd=budget, progress=progress,
                                         batch=batch, poll_s=self.cfg.batch_poll_s, run_id=self.run_id)
            advance(len(requests) - seen[0])
            self.calls.add(teacher.spec, replies)
            return replies

        async def main() -> list[list[Reply]]:
            try:
                if self.cfg.budget_usd is None:
                    return list(await asyncio.gather(*(one(t, r, label, None) for t, r, label in jobs if r)))
                # one budget across teachers: the run's spend so far counts against it (leases.py)
                out = []
                for teacher, requests, label in jobs:
                    if requests:
                        out.append(await one(teacher, requests, label, self.cfg.budget_usd))
                return out
            finally:
                for teacher, _, _ in jobs:
                    if teacher.is_remote and hasattr(teacher, "aclose"):
                        await teacher.aclose()

        results = iter(asyncio.run(main()))
        return [next(results) if requests else [] for _, requests, _ in jobs]

    def estimate(self, teacher: Teacher, requests: list[Request]) -> dict:
        est = estimate(teacher, requests, cache=self.cache, batch=self.cfg.batch and teacher.is_remote)
        return {"requests": est.requests, "cached": est.cached, "to_send": est.to_send,
                "input_tokens": est.input_tokens, "max_output_tokens": est.max_output_tokens,
                "cost_usd": est.cost_usd, "cost_known": est.cost_known}


# -- the verb

def synth(ref: str, cfg: SynthConfig, *, store: DatasetStore, project: Project | None = None,
          track: Tracker = no_progress, embedder: Any = None, teachers: dict[str, Teacher] | None = None,
          stage: dict[str, Any] | None = None) -> SynthRun:
    """Label `ref`'s notes for cfg.task with cfg.teachers and write a new version (nothing when cfg.dry_run).

    `stage` (assay.stage's fingerprint and inputs) goes into the manifest, so an unchanged rerun is found.

    `embedder` (a SentenceTransformer) is used by semantic dedupe of synthetic notes and by
    similarity=embedding; `teachers` maps specs to ready teacher objects (a preloaded local model).
    """
    project = project or Project.current()
    version = store.get(ref)
    df = conform(version.data())
    task = get_task(cfg.task)
    prompt = Prompt(_labels(cfg, df) if task.name == "classify" else None, cfg.qa_pairs)
    strategy = get_strategy(cfg.select)
    session = Session(cfg, project, track, teachers)
    guard = guard_for(cfg)
    max_tokens = cfg.max_tokens or task.max_tokens

    work, consumed = _work_rows(df, task, cfg)
    plans = gapfill.plan_gaps(version.manifest, df, cfg.gaps) if cfg.fill_gaps else []

    if cfg.dry_run:
        return SynthRun(None, _dry_run(session, cfg, task, prompt, work, plans, guard, max_tokens))

    # 1. gap filling: new notes for thin cells, vetted like real notes
    vetted, write_candidates, write_failures = None, [], {}
    if plans and any(p.to_write for p in plans):
        vetted, write_candidates, write_failures = _fill(session, cfg, version, df, plans, guard, embedder)
        if vetted.kept.height:  # a split, or the training loader (train/validation rows only) never sees them
            work = pl.concat([work, assign_synthetic_splits(vetted.kept, _split_config(version))],
                             how="diagonal_relaxed")

    # 2. every note x every teacher, through the cache
    teacher_objs = [session.teacher(spec) for spec in cfg.teachers]
    notes = work.select("note_id", "title", "text").to_dicts()
    jobs = []
    for teacher in teacher_objs:
        requests = []
        for note in notes:
            seen = {"title": guard.outgoing(teacher, note["note_id"], note["title"]),
                    "text": guard.outgoing(teacher, note["note_id"], note["text"])}
            requests.append(Request(task.render(seen, prompt), max_tokens=max_tokens, temperature=cfg.temperature,
                                    metadata={"note_id": note["note_id"], "task": task.name, "role": "generate",
                                              "prompt_version": task.prompt_version}))
        jobs.append((teacher, requests, task.name))
    replies = session.run(jobs)

    # 3. restore, parse, select
    groups, cand_rows = [], []
    for n, note in enumerate(notes):
        cands = []
        for teacher, teacher_replies in zip(teacher_objs, replies):
            reply = teacher_replies[n]
            text, unknown = guard.incoming(teacher, note["note_id"], reply.text)
            parsed = _parse(task, prompt, reply, text)
            cands.append(Candidate(teacher.spec, parsed, text, reply.finish_reason))
            cand_rows.append(candidate_row(note["note_id"], task.name, task.prompt_version, teacher, reply, text,
                                            parsed, unknown))
        groups.append(Group(note["note_id"], note, cands))
    ctx = _select_context(session, cfg, task, prompt, guard, embedder)
    choices = strategy(groups, ctx)

    # 4. the new version
    data, rejects, cand_table = assemble(df, work, consumed, groups, choices, cand_rows, task, prompt, cfg, guard)
    if write_candidates:
        cand_table = pl.concat([cand_table, pl.DataFrame(write_candidates, schema=cand_table.schema)])
    tables = {"candidates": cand_table}
    reject_frames = [f for f in (rejects, vetted.rejects if vetted else None) if f is not None and f.height]
    if reject_frames:
        tables["rejects"] = pl.concat(reject_frames, how="diagonal_relaxed")
    outputs_added = outputs_by_cell(version.manifest, plans, data, work)
    after = gapfill.coverage_after(version.manifest, data) if version.manifest.get("gaps") else []
    fields = {
        "task": task.name,
        "prompt_version": task.prompt_version,
        "teachers": mask_urls_in(cfg.teachers),  # credentials in a teacher's URL never reach the manifest
        "selection": {"strategy": cfg.select, "similarity": cfg.similarity, "judge": mask_urls_in(cfg.judge)},
        "calls": session.calls.lines,
        "spend": {"total_usd": round(session.calls.spent, 6),
                  "cost_unknown": sorted(s for s, line in session.calls.lines.items() if not line["cost_known"])},
        "cache_hits": sum(line["cache_hits"] for line in session.calls.lines.values()),
        "new_calls": sum(line["calls"] for line in session.calls.lines.values()),
        "failures": failure_counts(cand_table),
        "labeled": sum(c.index is not None for c in choices),
        "no_valid_output": sum(c.index is None for c in choices),
        "egress": guard.summary(),
        "gap_fill": gapfill.report(plans, vetted, write_failures, outputs_added, after) if cfg.fill_gaps else None,
        "coverage": after,
        "gaps": [c for c in after if c["missing"] > 0],
    }
    out = store.write(cfg.name or version.manifest["name"], data, step="synth",
                      config=mask_urls_in(cfg.model_dump(mode="json")), parents=[version.ref], tables=tables,
                      **fields, **(stage or {}))
    return SynthRun(out, {}, fields)


def _split_config(version: Version) -> SplitConfig:
    """The split settings the curated version was made with (its salt and proportions)."""
    found = (version.manifest.get("config") or {}).get("split")
    return SplitConfig.model_validate(found) if isinstance(found, dict) else SplitConfig()


def _labels(cfg: SynthConfig, df: pl.DataFrame) -> Labels:
    labels = cfg.labels.resolve(df)
    if not labels.categories:
        raise ConfigError("synth config", ["labels.categories: the dataset has no categories; name the labels to use"])
    return labels


def _work_rows(df: pl.DataFrame, task: Task, cfg: SynthConfig) -> tuple[pl.DataFrame, pl.Series]:
    """One row per note still to label for this task, and the mask of input rows those new rows replace
    (plain note rows without an output; with overwrite, also the task's old rows)."""
    labeled = (pl.col("task") == task.name) & pl.col("output").is_not_null()
    done = set() if cfg.overwrite else set(df.filter(labeled)["note_id"].to_list())
    todo = df.filter(~pl.col("note_id").is_in(list(done)) & pl.col("text").is_not_null())
    todo = todo.unique("note_id", keep="first", maintain_order=True)
    if cfg.limit is not None:
        todo = todo.head(cfg.limit)
    ids = todo["note_id"]
    replaceable = pl.col("output").is_null() | (labeled if cfg.overwrite else pl.lit(False))
    consumed = df.select((pl.col("note_id").is_in(ids.to_list()) & replaceable).alias("c"))["c"]
    return todo, consumed


def _parse(task: Task, prompt: Prompt, reply: Reply, text: str | None) -> Parsed:
    if not text:
        return Parsed(False, None, None, f"teacher_error:{reply.error}" if reply.error else "empty_reply")
    parsed = task.parse(text, prompt)
    if not parsed.ok and reply.finish_reason == "length":
        return Parsed(False, None, None, f"truncated:{parsed.reason}")
    return parsed


def _select_context(session: Session, cfg: SynthConfig, task: Task, prompt: Prompt, guard: Guard,
                    embedder: Any) -> SelectContext:
    if cfg.similarity == "embedding" and not task.structured and embedder is None:
        from assay.models import load_embedder

        embedder = load_embedder(cfg.embedding_model)
    ctx = SelectContext(task, cfg.similarity, embedder, cfg.judge, instruction=task.student_instruction(prompt))
    if cfg.select == "judge":
        judge = session.teacher(cfg.judge)

        def ask(spec: str, requests: list[Request]) -> list[Reply]:
            return session.run([(judge, requests, "judge")])[0]

        if judge.is_remote:
            ctx.protect = lambda note_id, text: guard.outgoing(judge, note_id, text) or ""
        ctx.ask = ask
    return ctx


def _fill(session: Session, cfg: SynthConfig, version: Version, df: pl.DataFrame, plans: list, guard: Guard,
          embedder: Any) -> tuple[gapfill.Vetted, list[dict], dict[str, dict[str, int]]]:
    """Write new notes for the planned cells, parse them, and vet them (clean, dedupe, cross-dedupe, target)."""
    writer_spec = ALIASES.get(cfg.writer(), cfg.writer())
    writer = session.teacher(writer_spec)

    def protect(note_id, text):
        return guard.outgoing(writer, note_id, text) or ""

    slots = gapfill.write_requests(plans, cfg.gaps, protect)
    replies = session.run([(writer, [s[3] for s in slots], "write notes")])[0]
    written, cand_rows, failures = [], [], {}
    for (plan, slot, example_ids, request), reply in zip(slots, replies):
        # never restore a written note: its placeholders stand for another note's PII
        text = fill_surrogates(reply.text) if reply.text and writer.is_remote else reply.text
        parsed = _parse(WRITE_NOTE, Prompt(), reply, text)
        note_id = gapfill.synthetic_id(plan.key, slot, parsed.output) if parsed.ok else f"{plan.key}#{slot}"
        row = candidate_row(note_id, "write_note", WRITE_NOTE.prompt_version, writer, reply, text,
                             parsed, 0)
        row["chosen"] = parsed.ok
        cand_rows.append(row)
        if parsed.ok:
            written.append((plan, slot, example_ids, parsed, writer.spec))
        else:
            failures.setdefault(plan.key, Counter())[parsed.reason.split(":", 1)[0]] += 1
    notes = gapfill.synthetic_notes(written, WRITE_NOTE.prompt_version)
    real = df.filter(~pl.col("synthetic").fill_null(False))
    if cfg.gaps.dedupe.semantic.enabled and embedder is None:
        from assay.models import load_embedder

        embedder = load_embedder(cfg.gaps.dedupe.semantic.model)
    vetted = gapfill.vet(notes, real, plans, cfg.gaps, reference_name=version.ref, embedder=embedder)
    return vetted, cand_rows, {k: dict(v) for k, v in failures.items()}


def _dry_run(session: Session, cfg: SynthConfig, task: Task, prompt: Prompt, work: pl.DataFrame, plans: list,
             guard: Guard, max_tokens: int) -> dict:
    """What the run would send and cost, from the cache and the price table; nothing is sent or written."""
    notes = work.select("note_id", "title", "text").to_dicts()
    lines: dict[str, dict] = {}

    def add(label: str, line: dict) -> None:
        total = lines.setdefault(label, {k: 0 for k in line} | {"cost_known": True})
        for k, v in line.items():
            total[k] = (total[k] and v) if k == "cost_known" else total[k] + v

    planned = sum(p.to_write for p in plans)
    for spec in cfg.teachers:
        teacher = session.teacher(spec, dry_run=True)
        requests = [Request(task.render({"title": guard.outgoing(teacher, n["note_id"], n["title"]),
                                         "text": guard.outgoing(teacher, n["note_id"], n["text"])}, prompt),
                            max_tokens=max_tokens, temperature=cfg.temperature) for n in notes]
        line = session.estimate(teacher, requests)
        if planned and requests:
            # new notes do not exist yet: price them like the average note (at most every one is a new call)
            scale = planned / len(requests)
            extra = {k: round(line[k] * scale) for k in ("input_tokens", "max_output_tokens")}
            extra_cost = (teacher.price.cost(extra["input_tokens"], extra["max_output_tokens"])
                          if teacher.price else 0.0)
            add(teacher.spec, {"requests": planned, "cached": 0, "to_send": planned, **extra,
                               "cost_usd": extra_cost, "cost_known": teacher.price is not None})
        add(teacher.spec, line)
    if planned:
        writer = session.teacher(ALIASES.get(cfg.writer(), cfg.writer()), dry_run=True)
        slots = gapfill.write_requests(plans, cfg.gaps, lambda note_id, text: guard.outgoing(writer, note_id, text))
        add(writer.spec, session.estimate(writer, [s[3] for s in slots]))
    if cfg.select == "judge" and len(cfg.teachers) > 1:
        judge = session.teacher(cfg.judge, dry_run=True)
        # stand-in candidates as long as each teacher may answer, since the real ones are not known yet
        stand_in = "x " * max_tokens
        groups = [Group(n["note_id"], n, [Candidate(t, Parsed(True, stand_in, stand_in), stand_in)
                                          for t in cfg.teachers]) for n in notes]
        ctx = SelectContext(task, instruction=task.student_instruction(prompt))
        add(judge.spec, session.estimate(judge, [r for _, r in judge_requests(groups, ctx)]))
    total = {"requests": 0, "cached": 0, "to_send": 0, "input_tokens": 0, "max_output_tokens": 0, "cost_usd": 0.0,
             "cost_known": True}
    for line in lines.values():
        for k in total:
            total[k] = (total[k] and line[k]) if k == "cost_known" else total[k] + line[k]
    return {"teachers": lines, "total": total, "notes": len(notes), "new_notes_planned": planned,
            "budget_usd": cfg.budget_usd,
            "within_budget": None if cfg.budget_usd is None else total["cost_usd"] <= cfg.budget_usd}
