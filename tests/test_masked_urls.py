"""Credentials in a URL (user:password@, ?api_key=, ?token=) are used for the call and never written or printed.

Planted in every place a URL enters from the command line (an eval baseline, the judge, a synth teacher in a
pipeline, ARGILLA_API_URL), then looked for in stdout, stderr, and every byte of every file the run left under
the project folder (results.json, index.html, the SQLite state and its dump, run logs and their summaries,
manifests, model cards). The teachers are a local HTTP server speaking OpenAI's wire format.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "synth"))
sys.path.insert(0, str(TESTS / "evals"))

from fake_provider import FakeProvider  # noqa: E402

from assay.project import Project  # noqa: E402

SAMPLE = TESTS.parent / "datasets" / "sample"
# each secret is unlike anything else in a project, so finding it anywhere is a leak
PASSWORD, API_KEY, TOKEN = "s3cretPW-never-written", "SECRETKEY-never-written", "t0ken-never-written"
JUDGE_PW, JUDGE_KEY = "judgePW-never-written", "judgeKEY-never-written"
ARGILLA_PW, ARGILLA_KEY = "argillaPW-never-written", "argillaKEY-never-written"
SECRETS = (PASSWORD, API_KEY, TOKEN, JUDGE_PW, JUDGE_KEY, ARGILLA_PW, ARGILLA_KEY)


class Teacher(FakeProvider):
    """The OpenAI-compatible fake answering as a teacher would: {"winner": "A"} to a pairwise judge prompt,
    a one-sentence summary to anything else (the fake's usual "reply <digest>" is too short for one)."""

    def answer(self, api, body, fault="ok"):
        reply = super().answer(api, body, fault)
        judging = "Output A" in body["messages"][-1]["content"]
        reply["choices"][0]["message"]["content"] = (json.dumps({"winner": "A"}) if judging else
                                                     "The note lists the plan, the owners and the next date.")
        return reply


def assert_nothing_leaked(home: Path, *outputs: str) -> list[Path]:
    """No secret in the outputs, in any file under `home`, or in a dump of its SQLite databases; every leak
    is named at once."""
    leaks = [f"{secret} in output {k}" for k, text in enumerate(outputs) for secret in SECRETS if secret in text]
    files = [p for p in home.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        leaks += [f"{secret} in {path.relative_to(home)}" for secret in SECRETS if secret.encode() in data]
        if data.startswith(b"SQLite format 3"):
            with sqlite3.connect(path) as conn:
                dump = "\n".join(conn.iterdump())
            leaks += [f"{secret} in a dump of {path.relative_to(home)}" for secret in SECRETS if secret in dump]
    assert not leaks, "\n".join(leaks) + "\n" + "\n".join(outputs)
    return files


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_eval_against_a_teacher_and_a_judge_with_credentials_writes_and_prints_them_nowhere(
        assay, tmp_path, monkeypatch, assay_cache):
    import torch
    from tiny_student import register_student

    home = tmp_path / "proj"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads fight on the shared 2-core box
    try:
        register_student(Project(home))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    with Teacher(hang_s=5.0) as server:
        host = server.url.removeprefix("http://")
        teacher = f"openai-compatible:m@http://alice:{PASSWORD}@{host}/v1?api_key={API_KEY}&token={TOKEN}&tier=free"
        judge = f"openai-compatible:j@http://bob:{JUDGE_PW}@{host}/v1?key={JUDGE_KEY}"
        run = assay("eval", "summarize", "-m", "notes-student@v1.0.0", "--against", f"rule:lead,{teacher}",
                    "data.limit=1", "generation.max_new_tokens=4", "metrics=[rougeL]", f"judge.teacher={judge}",
                    f"judge.against=teacher:{teacher}", home=home)
        calls = server.model_calls()

    # the credentials were used: both teachers were called, with the password as Basic auth
    assert len(calls) == 2 and all(c["api_key"].startswith("Basic ") for c in calls)
    results = json.loads(next(home.glob("reports/*/results.json")).read_text(encoding="utf-8"))
    shown = f"teacher:openai-compatible:m@http://***@{host}/v1?api_key=***&token=***&tier=free"
    assert [m["key"] for m in results["models"]] == ["candidate", "rule:lead", shown]
    assert results["judge"]["teacher"] == f"openai-compatible:j@http://***@{host}/v1?key=***"
    assert results["judge"]["baseline"] == shown and results["judge"]["calls"] == 1
    html = (home / "reports" / results["run_id"] / "index.html").read_text(encoding="utf-8")
    assert f"openai-compatible:m@http://***@{host}/v1?api_key=***" in html
    assert "***@" in run.stdout

    files = assert_nothing_leaked(home, run.stdout, run.stderr)
    assert {"results.json", "index.html", "state.db", "README.md"} <= {p.name for p in files}


def test_the_report_masks_credentials_in_results_written_before_they_were_masked(tmp_path):
    """The HTML writer masks on its own: a results.json from an older assay, or edited by hand, still holds them."""
    from fake_results import fake_results

    from assay.evals.report import compare_html, write_report

    url = f"http://alice:{PASSWORD}@inference.example.com/v1?api_key={API_KEY}&token={TOKEN}"
    text = json.dumps(fake_results(8, 5, hostile=f" see {url} ")).replace("teacher:local", f"openai-compatible:m@{url}")
    results = json.loads(text)
    assert PASSWORD in text and f"openai-compatible:m@{url}" in results["scores"]  # planted in keys and values
    write_report(results, tmp_path / "run")
    (tmp_path / "compare.html").write_text(compare_html(results, results), encoding="utf-8")
    html = (tmp_path / "run" / "index.html").read_text(encoding="utf-8")
    assert "openai-compatible:m@http://***@inference.example.com/v1?api_key=***" in html
    assert_nothing_leaked(tmp_path)


def test_an_unreachable_argilla_url_with_credentials_is_reported_masked(assay, tmp_path, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("ARGILLA_API_URL", f"http://annie:{ARGILLA_PW}@127.0.0.1:{port}/?api_key={ARGILLA_KEY}")
    monkeypatch.setenv("ARGILLA_API_KEY", "argilla.test-key")
    home = tmp_path / "proj"
    home.mkdir()
    run = assay("review", "status", "notes", home=home, check=False)
    assert run.returncode != 0 and "cannot reach Argilla at" in run.stderr
    assert f"http://***@127.0.0.1:{port}/?api_key=***" in run.stderr
    assert_nothing_leaked(home, run.stdout, run.stderr)


@pytest.mark.slow
def test_a_pipeline_with_credentials_in_teacher_and_argilla_urls_keeps_them_out_of_manifests_and_logs(
        assay, tmp_path, monkeypatch):
    notes = json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))[:20]
    (tmp_path / "notes.json").write_text(json.dumps(notes), encoding="utf-8")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"curate:\n  source: notes.json\n  config: {SAMPLE / 'curate.yaml'}\n"
                        "review:\n  mode: push\n", encoding="utf-8")
    port = closed_port()
    monkeypatch.setenv("ARGILLA_API_URL", f"http://annie:{ARGILLA_PW}@127.0.0.1:{port}?api_key={ARGILLA_KEY}")
    monkeypatch.setenv("ARGILLA_API_KEY", "argilla.test-key")
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    home = tmp_path / "proj"
    with Teacher(hang_s=5.0) as server:
        host = server.url.removeprefix("http://")
        teacher = f"openai-compatible:m@http://alice:{PASSWORD}@{host}/v1?api_key={API_KEY}&token={TOKEN}"
        run = assay("run", str(pipeline), "--until", "review",
                    f'synth.overrides=["limit=4", "teachers=[rule:lead, \'{teacher}\']", "fill_gaps=false"]',
                    home=home, check=False)
        calls = server.model_calls()

    assert len(calls) == 4, run.stdout + run.stderr  # the teacher was reached with its credentials
    assert run.returncode != 0 and "cannot reach Argilla at" in run.stdout + run.stderr
    files = assert_nothing_leaked(home, run.stdout, run.stderr)
    names = {p.name for p in files}
    assert "manifest.json" in names and any(n.endswith(".log") for n in names) and "state.db" in names
    summary = json.loads(next(home.glob(".assay/logs/*.json")).read_text(encoding="utf-8"))
    assert [r["status"] for r in summary["stages"]][-1] == "failed"


def test_two_baselines_that_differ_only_in_credentials_are_refused(tmp_path, assay):
    a = "openai-compatible:m@http://ann:pw1@127.0.0.1:9/v1"
    b = "openai-compatible:m@http://bob:pw2@127.0.0.1:9/v1"
    proc = assay("eval", "summarize", "--model", "x@v1.0.0", "--against", f"{a},{b}", home=tmp_path, check=False)
    assert proc.returncode == 2 and "two baselines differ only in their credentials" in proc.stderr, proc.stderr
    assert "pw1" not in proc.stderr + proc.stdout and "pw2" not in proc.stderr + proc.stdout
