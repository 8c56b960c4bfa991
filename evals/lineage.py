"""What a report says about where the candidate came from, and where each verdict is recorded.

Lineage walks the dataset versions the candidate was trained on back to the curated export
(curation counts, teachers, spend, what left the machine, review); training reads the model
version folder; trend and verdicts live in the project's SQLite state beside the registry.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import yaml

from assay.errors import AssayError
from assay.project import Project

CARD_BEGIN, CARD_END = "<!-- assay:evals -->", "<!-- /assay:evals -->"


def contamination(examples, train_version) -> list[str]:
    """A warning when evaluation notes were trained on: their scores say little about new notes."""
    if train_version is None:
        return []
    df = train_version.data()
    if "split" not in df.columns:
        return []
    trained = df["split"].is_in(["train", "validation"])
    if "output" in df.columns:  # a note is trained on when a labeled row carries it, whatever the task
        trained = trained & df["output"].is_not_null()
    seen = set(df.filter(trained)["note_id"].to_list())
    hit = sum(1 for ex in examples if ex.note_id in seen)
    if not hit:
        return []
    return [f"{hit} of {len(examples)} evaluation notes are labeled training or validation rows of "
            f"{train_version.ref}: the candidate saw them in training, so its scores on them are optimistic."]


def training(candidate) -> dict | None:
    folder = Path(candidate.path)
    log_file = folder / "training_log.jsonl"
    if not log_file.is_file():
        return None
    log = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            for key in [k for k in row if k == "samples" or k.endswith("_predictions")]:
                row.pop(key)  # the answers logged at each evaluation belong to the run folder, not the report
            log.append(row)
    config = (yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
              if (folder / "config.yaml").is_file() else None)
    return {"log": log, "config": config, "base_model": candidate.base_model, "device": candidate.device,
            "wall_time_s": candidate.wall_time_s, "metrics": candidate.metrics, "recipe": candidate.recipe}


def ondevice(candidate, measured: dict[str, dict] | None = None) -> list[dict]:
    """Size of each export of the candidate, with the figures this run measured (`measured`, format -> figures;
    an `ondevice.json` left by an earlier run is never read here: a verdict uses this run's figures only)."""
    found = []
    for info_file in sorted((Path(candidate.path) / "exports").glob("*/export.json")):
        if info_file.parent.name.startswith("."):
            continue
        info = json.loads(info_file.read_text(encoding="utf-8"))
        row = {"format": info["format"], "status": info["status"], "size_mb": round(info["size_bytes"] / 1e6, 1),
               "tokens_per_s": info.get("parity", {}).get("tokens_per_s")}
        row.update((measured or {}).get(info_file.parent.name, {}))
        found.append(row)
    return found


def lineage(store, candidate, eval_spend: dict[str, dict]) -> dict:
    """Dataset, curation counts, teachers, spend, egress and review, from the manifests of its versions."""
    chain = _chain(store, candidate.dataset)
    curated = next((m for m in reversed(chain) if m.get("step") == "curate"), None)
    synths = [m for m in chain if m.get("step") == "synth"]
    reviews = [m for m in chain if m.get("step") == "review"]
    egress = {"synth_rows_left_machine": sum(m.get("egress", {}).get("rows_left_machine", 0) for m in synths),
              "synth_rows_redacted": sum(m.get("egress", {}).get("rows_redacted", 0) for m in synths),
              "eval": {k: v["egress"] for k, v in eval_spend.items() if v.get("egress", {}).get("rows_left_machine")}}
    return {
        "dataset": candidate.dataset,
        "dataset_hash": candidate.dataset_hash,
        "versions": [m.get("name", "?") + "@" + str(m.get("version")) + f" ({m.get('step')})" for m in chain],
        "curation": ({"export": ", ".join(f"{i.get('file')} ({i.get('format')}, {i.get('records')} records)"
                                          for i in curated.get("inputs", [])), "rows_in": curated.get("rows_in"),
                      "kept": curated.get("rows"), "dropped": curated.get("dropped", {}),
                      "splits": curated.get("splits")}
                     if curated else None),
        "teachers": candidate.teachers,
        "spend_usd": round(sum(m.get("spend", {}).get("total_usd", 0.0) for m in synths)
                           + sum(v.get("spend_usd", 0.0) for v in eval_spend.values()), 6),
        "synth_spend_usd": round(sum(m.get("spend", {}).get("total_usd", 0.0) for m in synths), 6),
        "eval_teacher_calls": {k: {"calls": v["calls"], "cached": v["cached"], "spend_usd": v["spend_usd"]}
                               for k, v in eval_spend.items()},
        "egress": egress,
        "review": reviews[-1].get("review") if reviews else None,
        "training_config": None,
        "base_model": candidate.base_model,
        "hardware": candidate.device,
        "eval_hardware": _this_machine(),
    }


def _chain(store, ref: str) -> list[dict]:
    """The manifest of `ref` and of its first parents, newest first."""
    found, seen = [], set()
    while ref and ref not in seen:
        seen.add(ref)
        try:
            manifest = store.get(ref).manifest
        except AssayError:
            break
        found.append(manifest)
        ref = (manifest.get("parents") or [None])[0]
    return found


def _this_machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores"


# ---------------------------------------------------------------- trend and verdicts

def trend(project: Project, candidate, suite, current: float | None, previous: float | None) -> list[dict]:
    """The headline metric of every registered version of the model, on this suite version."""
    from assay import registry

    with project.db() as conn:
        # same examples, prompt and generation (suite key) and the same headline metric: a value of another
        # metric or of other examples is never drawn on this line
        rows = conn.execute("SELECT version, value, run_id FROM eval_runs WHERE name = ? AND suite_key = ? "
                            "AND headline = ? ORDER BY created_at",
                            (candidate.name, suite.key, suite.headline)).fetchall()
    stored = {r["version"]: (r["value"], r["run_id"]) for r in rows}
    parent = candidate.parent.partition("@")[2] if candidate.parent else None
    points = []
    for version in registry.versions(project, candidate.name):
        value, run = stored.get(version.version, (None, None))
        if version.version == candidate.version:
            value, run = current, None
        elif version.version == parent and previous is not None:
            value = previous
        points.append({"version": version.version, "value": value, "run_id": run,
                       "current": version.version == candidate.version})
    return points


def record_verdict(project: Project, candidate, results: dict, folder: Path) -> None:
    """The verdict and report path on the registry (eval_runs) and in the model card."""
    suite = results["suite"]
    value = results["scores"]["candidate"].get(suite["headline"])
    decision = results["verdict"]["decision"]
    with project.db() as conn:
        conn.execute("INSERT OR REPLACE INTO eval_runs VALUES (?,?,?,?,?,?,?,?,?)",
                     (results["run_id"], candidate.name, candidate.version, suite["key"], suite["headline"], value,
                      decision, str(folder), datetime.now(timezone.utc).isoformat(timespec="seconds")))
    from assay.registry import set_verdict

    set_verdict(project, candidate.ref, decision, folder / "index.html")
    _update_card(Path(candidate.path), project)


def verdicts(project: Project, name: str, version: str) -> list[dict]:
    with project.db() as conn:
        rows = conn.execute("SELECT * FROM eval_runs WHERE name = ? AND version = ? ORDER BY created_at",
                            (name, version)).fetchall()
    return [dict(r) for r in rows]


def _update_card(folder: Path, project: Project) -> None:
    card = folder / "README.md"
    if not card.is_file():
        return
    rows = verdicts(project, folder.parent.name, folder.name)
    lines = [CARD_BEGIN, "## Evaluations", "", "| suite | headline | value | verdict | report |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        shown = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        lines.append(f"| {r['suite_key']} | {r['headline']} | {shown} | {r['decision']} | {r['path']}/index.html |")
    lines.append(CARD_END)
    section = "\n".join(lines)
    text = card.read_text(encoding="utf-8")
    if CARD_BEGIN in text and CARD_END in text:
        head, _, rest = text.partition(CARD_BEGIN)
        text = head + section + rest.partition(CARD_END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = card.with_name(f".{card.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, card)
