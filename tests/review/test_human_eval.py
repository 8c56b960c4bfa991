"""Human evaluation of an eval run: push-eval -> annotators answer blind A/B questions -> pull-eval gives the
win rate with its CI in results.json and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from assay.project import Project
from conftest import annotator, server_records, submit
from curation.review.human_eval import dataset_name, record_id
from evals.judge import win_rate_ci
from evals.run import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evals"))
from fake_results import fake_results  # noqa: E402  (the report tests' results from the sample notes)

RUN = "notes-student-v1.1.0-summarize"


def review(server, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "assay", "review", *args], env=server.env(), capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"assay review {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_push_answer_pull_eval(server):
    project = Project(server.home)
    results = fake_results(10, 3)  # candidate, previous, base on ten sample notes
    assert results["run_id"] == RUN
    results["human"] = None  # as `assay eval` writes it: no human review yet
    folder = save(project, results)
    assert "no human preference review for this run" in (folder / "index.html").read_text()

    out = review(server, "push-eval", RUN).stdout
    assert "pushed 10 new record(s)" in out, out
    assert "pushed 0 new record(s) to Argilla dataset" in review(server, "push-eval", str(folder)).stdout
    name = dataset_name(RUN, "base")
    records = server_records(server, name)
    assert len(records) == 10

    # blind: the server holds no trace of which side is the candidate; our side file does
    side = json.loads((server.home / ".assay" / "human-eval" / f"{name}.json").read_text())
    where = side["positions"]
    assert sorted(where.values()).count("A") == 5 and side["baseline"] == "base"
    examples = {ex["id"]: ex for ex in results["examples"]}
    for ex_id, pos in where.items():
        record = records[record_id(RUN, "base", ex_id)]
        assert set(record["metadata"]) == {"category"}
        cand, base = examples[ex_id]["predictions"]["candidate"], examples[ex_id]["predictions"]["base"]
        assert (record["fields"]["output_a"], record["fields"]["output_b"]) == ((cand, base) if pos == "A" else (base, cand))

    def pick(ex_id: str, winner: str) -> str:  # the letter an annotator clicks for that winner
        if winner == "tie":
            return "tie"
        return where[ex_id].lower() if winner == "candidate" else {"A": "b", "B": "a"}[where[ex_id]]

    ids = sorted(where)
    ann_says = ["candidate"] * 6 + ["baseline"] * 2 + ["tie"] * 2
    ann, bob = annotator(server, "ann"), annotator(server, "bob")
    for ex_id, winner in zip(ids, ann_says):
        submit(server, ann, records[record_id(RUN, "base", ex_id)], {"preference": pick(ex_id, winner),
                                                                     "reason": f"{winner} reads better"})
    submit(server, bob, records[record_id(RUN, "base", ids[0])], {"preference": pick(ids[0], "candidate")})
    submit(server, bob, records[record_id(RUN, "base", ids[1])], {"preference": pick(ids[1], "baseline")})

    out = review(server, "pull-eval", RUN).stdout
    # per example: 1 (ids[0], both for), 0.5 (ids[1], one each), 1 x4, 0 x2, 0.5 x2 -> 6.5 / 10
    scores = [1.0, 0.5, 1, 1, 1, 1, 0, 0, 0.5, 0.5]
    rate, low, high = win_rate_ci(scores)
    assert rate == 0.65
    assert "human win rate vs smollm2-135m-instruct (zero-shot): 65.0%" in out, out
    human = json.loads((folder / "results.json").read_text())["human"]
    assert (human["win_rate"], human["ci_low"], human["ci_high"]) == (rate, low, high)
    assert 0.3 < low < 0.65 < high < 1.0  # ten examples: a wide interval around 0.65
    assert (human["n"], human["responses"], human["wins"], human["losses"], human["ties"]) == (10, 12, 7, 3, 2)
    assert human["annotators"] == {"ann": {"candidate": 6, "baseline": 2, "tie": 2},
                                   "bob": {"candidate": 1, "baseline": 1, "tie": 0}}
    first = [row for row in human["per_example"] if row["id"] == ids[0]][0]
    assert first["answers"]["ann"]["reason"] == "candidate reads better"
    html = (folder / "index.html").read_text()
    assert ("reviewers preferred the candidate over smollm2-135m-instruct (zero-shot) in 65% of 10 side-by-side "
            f"comparisons\n    (95% CI {low * 100:.0f}% to {high * 100:.0f}%)") in html

    bad = review(server, "push-eval", RUN, "--against", "rule:lead", check=False)
    assert bad.returncode != 0 and "--against must be a baseline of this run (previous, base)" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
