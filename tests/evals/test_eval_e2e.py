"""End to end, through the real CLI: curate the sample, train two small students with `assay train`,
`assay eval` the newer one against its previous version, the base model and `rule:lead` on the sample
gold set with the default gate, then read every section of the stored results and the report."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL_TRAIN = ["train.max_steps=4", "train.save_steps=2", "eval.every_steps=2", "eval.generate_examples=1",
               "eval.max_new_tokens=16", "data.dataset=notes@v1"]
SMALL_EVAL = ["data.limit=6", "generation.max_new_tokens=24", "ondevice.prompts=2", "ondevice.max_new_tokens=4"]
EMPTY_CHART = ("this run has no training record", "the training log has no loss values",
               "no baseline was compared with the candidate", "no registered version of this model has a",
               "no export of this model was measured on device")  # what a chart says when its run gave it nothing
pytestmark = pytest.mark.slow


def run(home: Path, *args: str, ok=(0,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASSAY_HOME": str(home), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "assay", *args], env=env, capture_output=True, text=True,
                          timeout=1800, cwd=REPO)
    assert proc.returncode in ok, f"assay {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, assay_cache):
    home = tmp_path_factory.mktemp("e2e")
    run(home, "curate", "datasets/sample/notes.json", "--config", "datasets/sample/curate.yaml")
    run(home, "train", "training/configs/demo.yaml", *SMALL_TRAIN, "train.max_steps=2")  # the previous version
    run(home, "train", "training/configs/demo.yaml", *SMALL_TRAIN, "train.learning_rate=0.0005")
    run(home, "export", "notes-student@v1.0.1", "--format", "int8")
    proc = run(home, "eval", "summarize", "--model", "notes-student@v1.0.1", "--against", "previous,base,rule:lead",
               "--gate", "evals/gates/default.yaml", *SMALL_EVAL, ok=(0, 4))
    folder = report_folder(proc)
    assert folder.parent == home / "reports" and folder.name.startswith("notes-student-v1.0.1-summarize-")
    return home, proc, folder, json.loads((folder / "results.json").read_text(encoding="utf-8"))


def report_folder(proc: subprocess.CompletedProcess) -> Path:
    """The run folder `assay eval` names on its last line (its id carries a digest of config, baselines, gate)."""
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("report: "))
    return Path(line.removeprefix("report: ")).parent


def test_the_verdict_matches_the_exit_code_and_names_its_rules(evaluated):
    _, proc, folder, results = evaluated
    verdict = results["verdict"]
    assert verdict["decision"] == ("SHIP" if proc.returncode == 0 else "NO-SHIP")
    assert [r["rule"] for r in verdict["rules"]] == ["rougeL better than base",
                                                     "rougeL vs previous: CI lower bound of the improvement >= -0.01",
                                                     "length_ok >= 0.8"]
    assert all(r["passed"] in (True, False) and r["explain"] for r in verdict["rules"])
    assert verdict["decision"] in proc.stdout and str(folder / "index.html") in proc.stdout


def test_every_contestant_is_scored_on_the_same_gold_examples(evaluated):
    _, _, _, results = evaluated
    assert [m["key"] for m in results["models"]] == ["candidate", "previous", "base", "rule:lead"]
    assert results["models"][1]["label"] == "notes-student@v1.0.0"
    gold = [json.loads(line) for line in (REPO / "datasets/sample/gold.jsonl").read_text().splitlines()][:6]
    assert [e["id"] for e in results["examples"]] == [g["note_id"] for g in gold]
    assert [e["reference"] for e in results["examples"]] == [g["summary"] for g in gold]
    for key in ("candidate", "previous", "base", "rule:lead"):
        for metric in ("rougeL", "rouge1", "rouge2", "embed_sim", "length_ok", "words", "repetition"):
            assert results["scores"][key][metric] is not None, (key, metric)
        # an output, or the reason there is none (rule:lead's lead sentence of a bullet list fails the parser)
        assert all(e["predictions"][key] or e["failures"][key] for e in results["examples"]), key
    # perplexity needs token probabilities: models have it, the rule says why it has none
    assert results["scores"]["candidate"]["perplexity"] > 1 and results["scores"]["rule:lead"]["perplexity"] is None
    assert ("rule" in results["missing"]["rule:lead"]["perplexity"]
            or "teacher" in results["missing"]["rule:lead"]["perplexity"])


def test_comparisons_regressions_and_the_recomputed_numbers_agree(evaluated):
    from assay.evals.metrics import rouge_l

    _, _, _, results = evaluated
    for key in ("candidate", "base"):
        per_example = [rouge_l(e["predictions"][key], e["reference"]) for e in results["examples"]]
        assert results["scores"][key]["rougeL"] == pytest.approx(sum(per_example) / len(per_example))
    head = [c for c in results["comparisons"] if c["metric"] == "rougeL"]
    assert {c["baseline"] for c in head} == {"previous", "base", "rule:lead"}
    for c in head:
        assert c["ci_low"] <= c["delta"] <= c["ci_high"] and c["n"] == 6
        worse = [e for e in results["examples"]
                 if e["scores"]["candidate"]["rougeL"] < e["scores"][c["baseline"]]["rougeL"]]
        assert [r["id"] for r in results["regressions"][c["baseline"]]] == \
            [e["id"] for e in sorted(worse, key=lambda e: e["scores"]["candidate"]["rougeL"]
                                     - e["scores"][c["baseline"]]["rougeL"])]


def test_training_lineage_and_trend_come_from_this_run(evaluated):
    home, _, folder, results = evaluated
    log = results["training"]["log"]
    assert ([r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
            and results["training"]["base_model"] == "smollm2-135m-instruct")
    lineage = results["lineage"]
    assert lineage["dataset"] == "notes@v1" and lineage["curation"]["rows_in"] == 298
    assert sum(lineage["curation"]["dropped"].values()) == 298 - lineage["curation"]["kept"]
    assert [p["version"] for p in results["trend"]] == ["v1.0.0", "v1.0.1"]
    assert results["trend"][1]["value"] == results["scores"]["candidate"]["rougeL"]
    assert results["trend"][0]["value"] == results["scores"]["previous"]["rougeL"]
    card = (home / "models/notes-student/v1.0.1/README.md").read_text()
    assert "## Evaluations" in card and results["verdict"]["decision"] in card
    with sqlite3.connect(home / ".assay" / "state.db") as db:  # and on the version's registry row
        row = db.execute("SELECT verdict, report FROM model_registry WHERE version = 'v1.0.1'").fetchone()
    assert row == (results["verdict"]["decision"], str(folder / "index.html"))
    listing = run(home, "models", "list").stdout
    assert f"summarize/v1: {results['verdict']['decision']}" in listing and "not evaluated" in listing  # v1.0.0


def test_every_section_of_the_report_is_filled_from_this_run(evaluated):
    home, _, folder, results = evaluated
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert not [why for why in EMPTY_CHART if why in page]
    device = {d["format"]: d for d in results["ondevice"]}
    assert list(device) == ["int8"] and device["int8"]["prompts"] == 2
    assert 0 < device["int8"]["latency_p50_ms"] <= device["int8"]["latency_p95_ms"]
    assert device["int8"]["size_mb"] > 0 and device["int8"]["peak_memory_mb"] > 0 and device["int8"]["ttft_ms"] > 0
    assert "On-device figures" in page and "Latency per example by export format" in page
    lineage = results["lineage"]
    assert lineage["dataset"] in page and str(lineage["curation"]["rows_in"]) in page
    assert [m["name"] for m in results["metrics"]] and all(f">{m['label']}" in page for m in results["metrics"])


def test_a_second_eval_generates_nothing_and_report_rebuilds(evaluated):
    home, _, folder, results = evaluated
    db = home / ".assay" / "state.db"
    before = sqlite3.connect(db).execute("SELECT model_key, example_key, created_at FROM eval_predictions").fetchall()
    assert len(before) == 6 * 3  # candidate, previous, base; the rule is cheap and goes through the teacher cache
    proc = run(home, "eval", "summarize", "--model", "notes-student@v1.0.1", "--against", "previous,base,rule:lead",
               *SMALL_EVAL)
    assert sqlite3.connect(db).execute(
        "SELECT model_key, example_key, created_at FROM eval_predictions").fetchall() == before
    ungated = report_folder(proc)  # no gate: another run, in its own folder; the gated run's verdict stays
    again = json.loads((ungated / "results.json").read_text())
    assert ungated != folder and json.loads((folder / "results.json").read_text())["verdict"] == results["verdict"]
    assert all(v.get("generated", 0) == 0 for v in again["predictions"].values())
    assert again["scores"] == results["scores"] and again["verdict"]["decision"] == "NO GATE"
    assert "0 new, 6 cached" in proc.stdout
    (folder / "index.html").unlink()
    run(home, "report", folder.name)
    assert (folder / "index.html").is_file()


def test_report_compares_two_runs_of_one_suite_from_the_cli(evaluated):
    home, _, folder, results = evaluated
    proc = run(home, "eval", "summarize", "--model", "notes-student@v1.0.0", "--against", "base", *SMALL_EVAL)
    assert "notes-student@v1.0.0 0 new, 6 cached" in proc.stdout  # it was the previous version in the first eval
    # the id without its digest names a run when only one matches (v1.0.0 was evaluated once)
    out = run(home, "report", "--compare", "notes-student-v1.0.0-summarize", folder.name).stdout
    page = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert page.parent.parent == home / "reports" and page.is_file()
    assert "notes-student@v1.0.0" in page.read_text() and "notes-student@v1.0.1" in page.read_text()
    one = run(home, "report", "--compare", "notes-student-v1.0.0-summarize", ok=(1, 2))
    assert "--compare takes exactly two runs (got 1)" in one.stderr + one.stdout and "Traceback" not in one.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_the_real_report_opens_offline_in_chromium(evaluated):
    from playwright.sync_api import sync_playwright

    _, _, folder, _ = evaluated
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((folder / "index.html").as_uri())
        page.wait_for_selector("#ex-count[data-count]")
        decision = page.inner_text("#verdict .decision")
        shown = int(page.get_attribute("#ex-count", "data-count"))
        browser.close()
    assert decision in ("SHIP", "NO-SHIP", "NO GATE") and shown == 6
    assert not errors and all(u.startswith("file://") for u in requests)
