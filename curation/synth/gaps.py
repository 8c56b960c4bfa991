"""Gap filling: read the gap list the balance step wrote, plan new notes per cell, and vet what comes back.

A gap is a coverage cell under its target ({"cell": "category=recipes", "rows", "target", "missing"}).
Cells over dimensions a note can be written for (category, tag, folder, length) get new synthetic notes,
written by a teacher in the style of the cell's real notes; those go through the same clean and dedupe
steps as real notes, and through cross-dedupe against the real notes, so no synthetic note is a
near-copy of another or of a real one. Cells over `task` are filled by the outputs this run adds;
cells over `month` are reported as not generated (a written note has no true date).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import polars as pl

from assay.curation.balance import cell_columns, coverage
from assay.curation.clean import clean
from assay.curation.config import BalanceConfig
from assay.curation.dedupe import cross_dedupe, dedupe
from assay.curation.steps import StepResult, split_by_reason
from assay.curation.synth.config import GapFillConfig
from assay.curation.synth.contract import Request
from assay.curation.synth.tasks import WRITE_NOTE, Parsed, load_template
from assay.records import conform, notes_frame

WRITABLE = ("category", "tag", "folder", "length")


def parse_cell(key: str) -> dict[str, str]:
    """"category=recipes,length=short(<200)" -> {"category": "recipes", "length": "short(<200)"}."""
    cell = {}
    for part in key.split(","):
        dim, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"gap cell {key!r}: {part!r} is not dimension=value")
        cell[dim.strip()] = value
    return cell


@dataclass
class CellPlan:
    key: str
    cell: dict[str, str]
    target: int
    missing: int
    to_write: int  # requests to send (missing x oversample, capped)
    examples: list[dict] = field(default_factory=list)  # real rows of the cell: note_id, text
    note_ids: list[str] = field(default_factory=list)  # every real note in the cell
    skipped: str | None = None  # why no notes are written for this cell


def balance_config(manifest: dict) -> BalanceConfig:
    """The balance config that wrote the gap list, so cells are recomputed the same way."""
    cfg = (manifest.get("config") or {}).get("balance")
    return BalanceConfig.model_validate(cfg) if isinstance(cfg, dict) else BalanceConfig()


def plan_gaps(manifest: dict, df: pl.DataFrame, cfg: GapFillConfig) -> list[CellPlan]:
    gaps = manifest.get("gaps") or []
    balance_cfg = balance_config(manifest)
    real = df.filter(pl.col("synthetic").fill_null(False).not_() & pl.col("text").is_not_null())
    real = real.unique("note_id", keep="first", maintain_order=True)
    plans = []
    for gap in gaps:
        cell = parse_cell(gap["cell"])
        dims = [d for d in cell if d in balance_cfg.dimensions]
        plan = CellPlan(gap["cell"], cell, int(gap["target"]), int(gap["missing"]), 0)
        if set(cell) != set(dims):
            plan.skipped = f"unknown_dimension:{','.join(sorted(set(cell) - set(dims)))}"
        else:
            cells = cell_columns(real, balance_cfg.model_copy(update={"dimensions": dims}))
            mask = pl.all_horizontal([cells[d] == cell[d] for d in dims]) if dims else pl.lit(True)
            members = real.filter(cells.select(mask.alias("m"))["m"])
            plan.note_ids = members["note_id"].to_list()
            plan.examples = [{"note_id": r["note_id"], "text": r["text"][: cfg.example_chars]}
                             for r in members.select("note_id", "text").iter_rows(named=True)]
            not_writable = sorted(set(cell) - set(WRITABLE))
            if not_writable:
                plan.skipped = f"not_generated:{','.join(not_writable)}"
            elif not plan.examples:
                plan.skipped = "no_examples"
            else:
                plan.to_write = min(cfg.max_new_per_cell, math.ceil(plan.missing * cfg.oversample))
        plans.append(plan)
    return plans


def write_requests(plans: list[CellPlan], cfg: GapFillConfig, protect=lambda note_id, text: text,
                   ) -> list[tuple[CellPlan, int, list[str], Request]]:
    """One request per slot; examples rotate so no two slots send the same prompt (and cache key)."""
    tpl = load_template(WRITE_NOTE.template)
    out = []
    for plan in plans:
        n = len(plan.examples)
        for slot in range(plan.to_write):
            chosen = [plan.examples[(slot + k) % n] for k in range(min(cfg.examples, n))]
            messages = tpl.render(cell=_describe(plan.cell),
                                  examples=[protect(e["note_id"], e["text"]) for e in chosen], slot=slot + 1)
            request = Request(messages, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                              metadata={"role": "write_note", "cell": plan.key, "slot": slot + 1,
                                        "prompt_version": tpl.prompt_version})
            out.append((plan, slot + 1, [e["note_id"] for e in chosen], request))
    return out


def _describe(cell: dict[str, str]) -> dict[str, str]:
    described = dict(cell)
    if "length" in cell:
        bound = cell["length"].partition("(<")[2].rstrip(")")
        described["length"] = f"under {bound} characters" if bound else "a long note"
    return described


def synthetic_id(cell_key: str, slot: int, text: str) -> str:
    return "syn-" + hashlib.sha1(f"{cell_key}\x00{slot}\x00{text}".encode()).hexdigest()[:12]


def synthetic_notes(written: list[tuple[CellPlan, int, list[str], Parsed, str]], prompt_version: str,
                    ) -> pl.DataFrame:
    """Rows for the parsed new notes: (plan, slot, example ids, parsed, writer spec) each."""
    rows = []
    for plan, slot, example_ids, parsed, writer in written:
        text = parsed.output or ""
        rows.append({
            "note_id": synthetic_id(plan.key, slot, text), "text": text, "category": plan.cell.get("category"),
            "tags": [plan.cell["tag"]] if plan.cell.get("tag") not in (None, "(none)") else None,
            "metadata": json.dumps({"cell": plan.key, "slot": slot, "examples": example_ids, "written_by": writer,
                                    "note_prompt_version": prompt_version,
                                    **({"folder": plan.cell["folder"]} if "folder" in plan.cell else {})}),
            "source_format": "synthetic", "origin": "synthetic", "synthetic": True,
            "teacher": writer, "prompt_version": prompt_version,
        })
    return notes_frame(rows)


@dataclass
class Vetted:
    kept: pl.DataFrame
    steps: list[StepResult]  # clean, dedupe passes, decontaminate, over_target

    @property
    def rejects(self) -> pl.DataFrame | None:
        frames = [s.rejects for s in self.steps if s.rejects.height]
        return pl.concat(frames, how="diagonal_relaxed") if frames else None


def vet(notes: pl.DataFrame, real: pl.DataFrame, plans: list[CellPlan], cfg: GapFillConfig, *,
        reference_name: str, embedder=None) -> Vetted:
    """The same clean and dedupe steps real notes went through, then cross-dedupe against the real notes,
    then at most `missing` notes per cell (the oversampled extra is dropped as over_target)."""
    steps = [clean(notes, cfg.clean)]
    steps += dedupe(steps[-1].kept, cfg.dedupe, embedder=embedder)
    steps.append(cross_dedupe(steps[-1].kept, conform(real), cfg.dedupe, reference_name, embedder=embedder))
    kept = steps[-1].kept
    room = {p.key: p.missing for p in plans}
    reasons = []
    for meta in kept["metadata"].to_list():
        key = json.loads(meta)["cell"]
        room[key] -= 1
        reasons.append(None if room[key] >= 0 else f"over_target:{key}")
    steps.append(split_by_reason(kept, reasons, "gap_target"))
    return Vetted(steps[-1].kept, steps)


def report(plans: list[CellPlan], vetted: Vetted | None, failures: dict[str, dict[str, int]],
           outputs_added: dict[str, int], after: list[dict] | None) -> list[dict]:
    """One line per gap cell for the manifest: what was missing, asked, parsed, kept, and why others went."""
    kept_by_cell: dict[str, int] = {}
    dropped: dict[str, dict[str, int]] = {}
    if vetted is not None:
        for meta in vetted.kept["metadata"].to_list():
            key = json.loads(meta)["cell"]
            kept_by_cell[key] = kept_by_cell.get(key, 0) + 1
        rejects = vetted.rejects
        if rejects is not None:
            for meta, reason in zip(rejects["metadata"].to_list(), rejects["reason"].to_list()):
                key, family = json.loads(meta)["cell"], reason.split(":", 1)[0]
                dropped.setdefault(key, {})
                dropped[key][family] = dropped[key].get(family, 0) + 1
    after_by_cell = {c["cell"]: c for c in after or []}
    lines = []
    for plan in plans:
        now = after_by_cell.get(plan.key)
        lines.append({
            "cell": plan.key, "missing": plan.missing, "requested": plan.to_write,
            "parse_failed": failures.get(plan.key, {}), "dropped": dropped.get(plan.key, {}),
            "synthetic_kept": kept_by_cell.get(plan.key, 0), "outputs_added": outputs_added.get(plan.key, 0),
            "still_missing": now["missing"] if now else None, "skipped": plan.skipped,
        })
    return lines


def coverage_after(manifest: dict, df: pl.DataFrame) -> list[dict]:
    """Coverage of the new data, with each gap cell held to the target it had (not a new median)."""
    cfg = balance_config(manifest)
    targets = {**cfg.targets, **{g["cell"]: int(g["target"]) for g in manifest.get("gaps") or []}}
    return coverage(df, cfg.model_copy(update={"targets": targets}))
