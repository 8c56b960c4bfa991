"""Human evaluation of an eval run: push-eval -> annotators answer blind A/B questions -> pull-eval gives the
win rate with its CI in results.json and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from html import escape
from pathlib import Path

from conftest import annotator, server_records, submit

from assay.curation.review.human_eval import dataset_name, record_id
from assay.evals.judge import win_rate_ci
from assay.evals.report import write_report
from assay.evals.run import save
from assay.project import Project

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
    # three examples where the candidate wrote what the base wrote (one up to a trailing newline): a tie that
    # nobody needs to be asked about; one where the base gave no output: nothing to compare
    examples = {ex["id"]: ex for ex in results["examples"]}
    same, missing = sorted(examples)[:3], sorted(examples)[3]
    for k, ex_id in enumerate(same):
        preds = examples[ex_id]["predictions"]
        preds["base"] = preds["candidate"] + ("\n" if k == 0 else "")
    examples[missing]["predictions"]["base"] = None
    planted = sorted(examples)[4]  # notes and outputs are untrusted: Argilla renders a field as HTML
    examples[planted]["text"] += " <img src=x onerror=alert(1)><script>window.__pwned=1</script>"
    examples[planted]["predictions"]["candidate"] += " <svg onload=alert(2)>"
    folder = save(project, results)
    write_report(results, folder)  # as `assay eval` does after saving
    assert "no human preference review for this run" in (folder / "index.html").read_text()

    push = review(server, "push-eval", RUN)
    said = " ".join(push.stdout.split())  # rich folds the long line with the URL
    assert said.startswith(f"pushed 6 new record(s) to Argilla dataset {dataset_name(RUN, 'base')!r} "
                           "(0 already there, 6 to compare); http://"), push.stdout
    assert ("not sent: 3 example(s) whose two outputs are identical (they count as ties) "
            "not sent: 1 example(s) without both outputs (not compared) which side") in said
    # the SDK's "batch size ... was normalized" warning and its "Sending records..." bar go to the log only
    assert push.stderr == "", push.stderr
    assert "normalized" not in said and "Sending records" not in said and "batch" not in said, push.stdout
    log = Path(push.stdout.splitlines()[-1].removeprefix("log: ")).read_text()
    assert "Sending records" in log  # the SDK bar went to the log, not the terminal
    assert "pushed 0 new record(s) to Argilla dataset" in review(server, "push-eval", str(folder)).stdout
    name = dataset_name(RUN, "base")
    records = server_records(server, name)
    assert len(records) == 6
    fields = records[record_id(RUN, "base", planted)]["fields"]
    shown = fields["note"] + fields["output_a"] + fields["output_b"]
    assert "<img" not in shown and "<script" not in shown and "<svg" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in fields["note"] and "&lt;svg onload" in shown
    assert not {record_id(RUN, "base", ex_id) for ex_id in [*same, missing]} & set(records)

    # blind: the server holds no trace of which side is the candidate; our side file does
    side = json.loads((server.home / ".assay" / "human-eval" / f"{name}.json").read_text())
    where = side["positions"]
    assert sorted(where) == sorted(examples)[4:]
    assert sorted(where.values()).count("A") == 3 and side["baseline"] == "base"
    for ex_id, pos in where.items():
        record = records[record_id(RUN, "base", ex_id)]
        assert set(record["metadata"]) == {"category"}
        cand, base = examples[ex_id]["predictions"]["candidate"], examples[ex_id]["predictions"]["base"]
        cand, base = escape(cand, quote=False), escape(base, quote=False)  # shown as text, never markup
        assert ((record["fields"]["output_a"], record["fields"]["output_b"])
                == ((cand, base) if pos == "A" else (base, cand)))

    def pick(ex_id: str, winner: str) -> str:  # the letter an annotator clicks for that winner
        if winner == "tie":
            return "tie"
        return where[ex_id].lower() if winner == "candidate" else {"A": "b", "B": "a"}[where[ex_id]]

    ids = sorted(where)
    ann_says = ["candidate"] * 3 + ["baseline", "tie"]  # the sixth example stays unanswered
    ann, bob = annotator(server, "ann"), annotator(server, "bob")
    for ex_id, winner in zip(ids, ann_says):
        submit(server, ann, records[record_id(RUN, "base", ex_id)], {"preference": pick(ex_id, winner),
                                                                     "reason": f"{winner} reads better"})
    submit(server, bob, records[record_id(RUN, "base", ids[0])], {"preference": pick(ids[0], "candidate")})
    submit(server, bob, records[record_id(RUN, "base", ids[1])], {"preference": pick(ids[1], "baseline")})

    pull = review(server, "pull-eval", RUN)
    assert pull.stderr == "", pull.stderr
    out = pull.stdout
    # per example: 1 (ids[0], both for), 0.5 (ids[1], one each), 1, 0, 0.5, and 0.5 for each identical pair
    scores = [1.0, 0.5, 1, 0, 0.5] + [0.5] * 3
    rate, low, high = win_rate_ci(scores)
    assert rate == 0.5625
    label = "smollm2-135m-instruct (zero-shot)"
    assert (f"7 blind answer(s) from 2 annotator(s): the candidate preferred in 4, {label} in 2, 1 tie(s); "
            "3 example(s) with identical outputs were not sent and count as ties") in out, out
    assert f"human win rate vs {label} with ties as half: 56.2% " in out, out
    assert "over 8 of 10 example(s) (5 answered, 3 identical)" in out, out
    human = json.loads((folder / "results.json").read_text())["human"]
    assert (human["win_rate"], human["ci_low"], human["ci_high"]) == (rate, low, high)
    assert {k: human[k] for k in ("wins", "losses", "ties", "responses", "identical", "answered", "n", "sent",
                                  "examples", "missing_output")} == {
        "wins": 4, "losses": 2, "ties": 1, "responses": 7, "identical": 3, "answered": 5, "n": 8, "sent": 6,
        "examples": 10, "missing_output": 1}
    assert human["identical_ids"] == same
    assert human["annotators"] == {"ann": {"candidate": 3, "baseline": 1, "tie": 1},
                                   "bob": {"candidate": 1, "baseline": 1, "tie": 0}}
    first = [row for row in human["per_example"] if row["id"] == ids[0]][0]
    assert first["answers"]["ann"]["reason"] == "candidate reads better"
    html = " ".join((folder / "index.html").read_text().split())
    assert (f"reviewers preferred the candidate in 4 of 7 blind answers, {label} in 2, and called 1 a tie; "
            "2 annotators answered. 3 examples whose two outputs were identical were not shown to anyone and count "
            f"as ties. Win rate with ties as half: 56% (95% CI {low * 100:.0f}% to {high * 100:.0f}%), over 8 of 10 "
            "examples (5 answered by people, 3 identical); 1 sent but not answered yet; 1 without both outputs, "
            "not compared.") in html

    bad = review(server, "push-eval", RUN, "--against", "rule:lead", check=False)
    assert bad.returncode != 0 and "--against must be a baseline of this run (previous, base)" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
