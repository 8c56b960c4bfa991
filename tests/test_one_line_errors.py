"""Bad input met at the command line is one line on stderr and a non-zero exit, never a traceback (issue 16,
item 5): a broken results.json, an Argilla URL that answers HTML, a read-only project, names too long for
the file system, a YAML alias bomb, metrics that do not fit the suite's task, comparisons of runs that
answered different questions, run ids and dataset references that lead out of the project."""

import ctypes
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from assay.store import DatasetStore

sys.path.insert(0, str(Path(__file__).resolve().parent / "evals"))
from fake_results import fake_results  # noqa: E402  (the report's test data)

REPO = Path(__file__).resolve().parent.parent


def one_line(proc: subprocess.CompletedProcess, *expected: str, code: int | None = None) -> str:
    """The error line, after checking it is the only thing on stderr and says each of `expected`."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def store_run(home: Path, folder: str, results: dict | None = None, *, text: str | None = None) -> Path:
    path = home / "reports" / folder / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(results), encoding="utf-8")
    return path


# ---------------------------------------------------------------- results.json

@pytest.mark.parametrize("text, says", [
    ("", "empty file"),
    ('{"schema": 1, "run_id": "notes-student-v1.1.0-summarize", "suite": {"na', "not valid JSON"),
    ('{"schema": 1, "run_id": "x", "suite": NaN', "not valid JSON"),
])
def test_an_empty_or_invalid_results_json_is_one_line_naming_the_file(tmp_path, assay, text, says):
    path = store_run(tmp_path, "run", text=text)
    one_line(assay("report", "run", home=tmp_path, check=False), str(path), says, code=2)


def _set(results: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = results
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


@pytest.mark.parametrize("field, value, named", [
    ("scores.candidate.rougeL", "0.77", None),      # a number as text: the table multiplied the string by 100
    ("comparisons.0.delta", None, "comparisons.0"),  # an interval without its delta
    ("examples.1.words", "many", None),             # the length buckets take quantiles of it
    ("models", {"candidate": "x"}, None),
    ("trend.0.value", [0.1], None),
    ("verdict.rules", "all passed", None),
    ("ondevice.0.latency_p95_ms", "95", None),
    ("human.win_rate", "60%", None),
])
def test_a_wrongly_typed_results_json_names_the_file_and_the_field(tmp_path, assay, field, value, named):
    results = fake_results(6, 3)
    _set(results, field, value)
    path = store_run(tmp_path, "run", results)
    one_line(assay("report", "run", home=tmp_path, check=False), str(path), f"(field {named or field!r}", code=2)
    assert not (path.parent / "index.html").exists()


def test_a_results_json_missing_a_model_s_scores_is_refused_on_read(tmp_path, assay):
    results = fake_results(6, 3)
    del results["scores"]["previous"]  # `assay run` printed its summary with results["scores"][key]: KeyError
    path = store_run(tmp_path, "run", results)
    one_line(assay("report", "run", home=tmp_path, check=False), str(path), "scores has no entry for model 'previous'")


# ---------------------------------------------------------------- --compare and run ids

def _pair(tmp_path: Path) -> tuple[dict, dict]:
    a, b = fake_results(8, 2), fake_results(8, 2, seed=1)
    b["run_id"] = "notes-student-v1.2.0-summarize"
    return a, b


@pytest.mark.parametrize("field, value, says", [
    ("task", "qa", "different tasks"),
    ("data", "datasets/sample/gold.jsonl (30 examples)", "different data"),
])
def test_compare_refuses_runs_of_different_tasks_or_data(tmp_path, assay, field, value, says):
    a, b = _pair(tmp_path)
    b["suite"][field] = value
    store_run(tmp_path, "a", a)
    store_run(tmp_path, "b", b)
    one_line(assay("report", "--compare", "a", "b", home=tmp_path, check=False), says, f"suite.{field}", value, code=2)
    assert not list((tmp_path / "reports").glob("compare-*"))


def test_a_run_id_that_leads_out_of_reports_is_refused(tmp_path, assay):
    home = tmp_path / "project"
    a, b = _pair(home)
    b["run_id"] = "../../../escaped"  # compare-../../../escaped-vs-...: three folders up from reports/
    store_run(home, "a", a)
    path = store_run(home, "b", b)
    one_line(assay("report", "--compare", "a", "b", home=home, check=False), str(path), "'run_id'",
             "inside reports/", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    assert not list((home / "reports").glob("compare-*"))


def test_long_run_ids_compare_into_a_folder_the_file_system_takes(tmp_path, assay):
    a, b = _pair(tmp_path)
    a["run_id"], b["run_id"] = "a" * 150 + "-v1.0.0-summarize", "b" * 150 + "-v1.1.0-summarize"
    store_run(tmp_path, "a", a)
    store_run(tmp_path, "b", b)
    proc = assay("report", "--compare", "a", "b", home=tmp_path)
    page = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert page.is_file() and page.parent.parent == tmp_path / "reports"
    assert len(page.parent.name.encode()) <= 255 and page.parent.name.startswith("compare-aaaa")


def test_a_run_name_too_long_for_the_file_system_is_not_found(tmp_path, assay):
    store_run(tmp_path, "notes-student-v1.1.0-summarize", fake_results(4, 2))
    one_line(assay("report", "x" * 300, home=tmp_path, check=False), "unknown eval run",
             "notes-student-v1.1.0-summarize")


def test_a_dataset_name_too_long_for_the_file_system_is_one_line(tmp_path, assay):
    proc = assay("curate", str(REPO / "datasets" / "sample" / "notes.json"), "--name", "n" * 300, home=tmp_path,
                 check=False)
    one_line(proc, "dataset name nnnn", "is 300 bytes", "at most 255")
    assert "dedupe" not in proc.stdout  # said before the work, not after it


# ---------------------------------------------------------------- a read-only project

def _without_root_powers() -> None:
    """Root writes into read-only folders; dropped from the bounding set, CAP_DAC_OVERRIDE and friends no
    longer let it, so the CLI meets the folder as any user would."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only_assay(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASSAY_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "assay", *args], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=_without_root_powers if os.geteuid() == 0 else None)


@pytest.fixture
def read_only(tmp_path):
    """tmp_path/project, made read-only (every folder and file) once the test has filled it."""
    home = tmp_path / "project"
    home.mkdir()

    def lock() -> Path:
        for path in [home, *home.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return home

    yield home, lock
    for path in [home, *home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def test_report_in_a_read_only_project_is_one_line(read_only):
    home, lock = read_only
    store_run(home, "run", fake_results(4, 2))
    one_line(read_only_assay(lock(), "report", "run"), str(home / "reports" / "run"), "Permission denied",
             "writable")


def test_curate_into_a_read_only_project_is_one_line(read_only):
    home, lock = read_only
    proc = read_only_assay(lock(), "curate", str(REPO / "datasets" / "sample" / "notes.json"))
    one_line(proc, str(home), "Permission denied", "writable")


def test_eval_in_a_read_only_project_with_state_is_one_line(read_only):
    home, lock = read_only
    from assay.project import Project

    Project(home).db().close()  # the state database exists; the folder and the file are read-only
    proc = read_only_assay(lock(), "eval", "summarize", "--model", "notes-student")
    one_line(proc, str(home / ".assay"), "writable")  # the run log's folder or the state database: what it meets first


# ---------------------------------------------------------------- YAML alias bombs

BOMB = "".join(f"{x}: &{x} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
               for p, x in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh"))  # 9**8 = 43 million values


@pytest.mark.parametrize("kind", ["suite", "gate", "pipeline"])
def test_a_yaml_alias_bomb_is_refused_before_anything_formats_it(tmp_path, kind):
    body = {"suite": "name: s\nversion: 1\ntask: summarize\nmetrics: *h\n",
            "gate": "rules: *h\n", "pipeline": "eval:\n  suite: *h\n"}[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(BOMB + body, encoding="utf-8")
    args = {"suite": ["eval", str(path), "--model", "m"],
            "gate": ["eval", "summarize", "--model", "m", "--gate", str(path)],
            "pipeline": ["run", str(path)]}[kind]
    env = {**os.environ, "ASSAY_HOME": str(tmp_path), "COLUMNS": "200"}
    # the old loader built it, then an error message walked all 43 million values: minutes and gigabytes
    proc = subprocess.run([sys.executable, "-m", "assay", *args], env=env, capture_output=True, text=True, timeout=60)
    one_line(proc, str(path), "aliases", code=2)


# ---------------------------------------------------------------- suites

def test_metrics_that_do_not_score_the_suite_s_task_are_refused(tmp_path, assay):
    path = tmp_path / "labels.yaml"
    path.write_text("name: labels\nversion: 1\ntask: classify\nmetrics: [accuracy, rougeL, field_f1]\n")
    proc = assay("eval", str(path), "--model", "notes-student", home=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    for metric in ("rougeL", "field_f1"):
        assert f"metrics: {metric!r} does not score a classify task" in proc.stderr, proc.stderr
    assert "accuracy'" not in proc.stderr


# ---------------------------------------------------------------- dataset references

def test_a_dataset_reference_resolves_inside_the_project_s_datasets_only(tmp_path, assay):
    home = tmp_path / "project"
    DatasetStore(tmp_path / "elsewhere").write("notes", pl.DataFrame({"note_id": ["n1"], "text": ["a note"]}),
                                               step="curate", config={})
    for ref in ("../../elsewhere/notes", str(tmp_path / "elsewhere" / "notes") + "@v1"):
        one_line(assay("datasets", "show", ref, home=home, check=False), repr(ref), "NAME or NAME@vN")


# ---------------------------------------------------------------- Argilla

class _LoginPage(http.server.BaseHTTPRequestHandler):
    """What a proxy, a login wall or the wrong port answers: 200 and an HTML page, to every request."""

    def _page(self):
        body = b"<!doctype html><html><body><form>Sign in</form></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = _page

    def log_message(self, *_):
        pass


def test_an_argilla_url_answering_html_is_one_line(tmp_path, assay, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoginPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("ARGILLA_API_KEY", "argilla.apikey")
    try:
        proc = assay("review", "status", "notes", "--argilla-url", url, home=tmp_path, check=False)
    finally:
        server.shutdown()
    one_line(proc, url, "not JSON", "ARGILLA_API_URL")
