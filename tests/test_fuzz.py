"""Fuzz: any bytes, in every export format, and any override text give either a dataset or one AssayError
line naming the file and the reason; never another exception, never a hang (issue 10, item 7)."""

import functools
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from assay.cli_eval import show_eval
from assay.config import load_config
from assay.curation.clean import clean
from assay.curation.config import CleanConfig, CurateConfig, IngestConfig
from assay.curation.ingest import ingest
from assay.errors import AssayError, ConfigError
from assay.evals.gate import load_gate
from assay.evals.report import compare_html, write_report
from assay.evals.run import load_results
from assay.evals.suite import load_suite
from assay.project import Project
from assay.runner import load_pipeline

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "evals"))
from fake_results import fake_results  # noqa: E402  (test data for the report, not a package)

# Examples per test; FUZZ_EXAMPLES=2000 for a longer hunt. The defaults keep the whole module under a minute.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])  # no_hang holds no state

SEEDS = {
    "json": b'[{"id": "a", "content": "Met Ana about the roadmap", "tags": ["work"], "created": "2025-03-14"},\n'
            b' {"uuid": 7, "body": "Call the dentist", "folder": "health", "meta": {"x": [1, 2.5, null]}}]',
    "jsonl": b'{"id": "a", "content": "Met Ana", "created_at": 1710408600000}\n'
             b'{"id": "b", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n',
    "csv": b'id,content,tags,created\n1,"Met Ana, about ""Q3""",work;plans,2025-03-14\n2,Call the dentist,,\n',
    "md": b"---\ntitle: Groceries\ntags: [food, home]\ncreated: 2025-03-14\n---\n# Groceries\nOat milk #shopping\n",
    "enex": b'<?xml version="1.0" encoding="UTF-8"?>\n<en-export><note><title>T</title><content><![CDATA['
            b'<en-note><div>Plan the <b>garden</b> &amp; beds</div><script>x()</script></en-note>]]></content>'
            b"<created>20250314T093000Z</created><tag>home</tag></note></en-export>\n",
}
FORMATS = {"json": "json", "jsonl": "jsonl", "csv": "csv", "md": "markdown", "enex": "enex"}
# pieces that have broken parsers before: structure, escapes, control and invalid bytes, deep nesting, huge numbers
FRAGMENTS = [b"[", b"]", b"{", b"}", b'"', b"'", b",", b":", b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\\u",
             b"\\ud83d", b'"\\ud83d"', b"---\n", b"...\n", b"<", b">", b"&", b"&#0;", b"<![CDATA[", b"]]>",
             b"<!ENTITY x 'y'>",
             b"<note>", b"</note>", b"<content>", b"*a", b"&a", b"#", b"\x1b[2J", b"[/bold]", b";", b"\t",
             b"[" * 3000, b"{" * 3000, b"9" * 5000, b"0x" + b"f" * 5000, b"- " * 200, b'"' * 3]


@st.composite
def export_bytes(draw, seed: bytes) -> bytes:
    """Random bytes, or the seed with pieces inserted, replaced and cut: most of the interesting failures
    are near-valid files, which pure random bytes seldom reach."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.binary(min_size=1, max_size=8)))
        cut = draw(st.integers(0, 8))
        data[at:at + cut] = piece
    return bytes(data)


def check_export(path: Path, fmt: str, skip_invalid: bool, no_hang) -> None:
    """The property: a dataset whose every record is accounted for, or one AssayError line naming the file."""
    try:
        with no_hang(20):
            result = ingest(path, IngestConfig(format=fmt, skip_invalid=skip_invalid))
            cleaned = clean(result.kept, CleanConfig())
    except AssayError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert path.name in message, message
        return
    assert sum(i["records"] for i in result.extra["inputs"]) == result.kept.height + result.rejects.height
    assert cleaned.rows_in == result.kept.height
    for meta in result.rejects["metadata"].to_list():
        error = json.loads(meta)["ingest_error"]
        assert "\n" not in error and path.name in error, error
    for text in cleaned.kept["text"].to_list():
        assert not any(ord(c) < 32 and c not in "\n\t" for c in text), repr(text)


@pytest.mark.parametrize("ext", list(SEEDS))
@FUZZ
@given(data=st.data())
def test_any_bytes_in_any_format(ext, data, no_hang):
    content = data.draw(export_bytes(SEEDS[ext]))
    skip_invalid = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"export.{ext}"
        path.write_bytes(content)
        check_export(path, FORMATS[ext], skip_invalid, no_hang)


@FUZZ
@given(files=st.lists(export_bytes(SEEDS["md"]), min_size=1, max_size=3), skip_invalid=st.booleans())
def test_any_bytes_in_a_markdown_folder(files, skip_invalid, no_hang):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        (folder / "sub").mkdir(parents=True)
        for i, content in enumerate(files):
            (folder / ("sub" if i % 2 else ".") / f"note-{i}.md").write_bytes(content)
        try:
            with no_hang(20):
                result = ingest(folder, IngestConfig(format="markdown", skip_invalid=skip_invalid))
        except AssayError as exc:
            assert "\n" not in str(exc) and "note-" in str(exc), str(exc)
            return
        assert result.kept.height + result.rejects.height == len(files)


KEYS = ["ingest.format", "ingest.max_note_bytes", "ingest.columns", "ingest.columns.text", "clean.min_chars",
        "dedupe.near.threshold", "balance.dimensions", "split.train", "bogus", "ingest", ""]


@FUZZ
@given(key=st.one_of(st.sampled_from(KEYS), st.text(max_size=20)),
       value=st.one_of(st.text(max_size=60), st.sampled_from([f.decode("latin-1") for f in FRAGMENTS])),
       sep=st.sampled_from(["=", "", "=="]))
def test_any_override_is_a_config_or_a_config_error(key, value, sep, no_hang):
    override = f"{key}{sep}{value}"
    try:
        with no_hang(20):
            load_config(CurateConfig, None, [override])
    except ConfigError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems), exc.problems
        if len(exc.problems) == 1:
            assert "\n" not in str(exc)


# ---------------------------------------------------------------- what fuzzing found, kept as plain tests


def test_found_csv_header_with_a_lone_carriage_return(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"\rid,content\n1,a note\n")
    with pytest.raises(AssayError, match=r"notes\.csv:1: unreadable CSV header: new-line character"):
        ingest(path, IngestConfig(skip_invalid=True))


def test_found_lone_surrogate_in_the_id_of_a_reject(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('[{"id": "a\\ud83d", "content": 5}, {"id": "b", "content": "x", "created": "\\ud83d\\n"}]')
    result = ingest(path, IngestConfig(skip_invalid=True))
    assert result.rejects["note_id"].to_list() == ["a?", "b"]
    assert result.rejects["reason"].to_list() == ["bad_type:content", "bad_date"]
    error = json.loads(result.rejects["metadata"][1])["ingest_error"]
    assert "\\ud83d\\n" in error and "\n" not in error


def test_found_front_matter_keys_of_mixed_types(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("---\nscores: {1: low, b: high}\n---\nA note body.\n")
    meta = json.loads(ingest(path, IngestConfig()).kept["metadata"][0])
    assert meta == {"scores": {"1": "low", "b": "high"}}


def test_found_huge_integer_in_a_config_problem():
    with pytest.raises(ConfigError, match=r"ingest: .*\(got \(a number too long to show\)\)"):
        load_config(CurateConfig, None, ["ingest=0x" + "f" * 5000])


def test_found_newline_in_an_override_key():
    with pytest.raises(ConfigError) as err:
        load_config(CurateConfig, None, ["0\n0=1"])
    assert str(err.value) == "defaults + overrides: 0\\n0: unknown key"


# ---------------------------------------------------------------- suite, gate and pipeline files (issue 16, item 5)

CONFIG_SEEDS = {
    "suite": (REPO / "evals" / "suites" / "summarize.yaml").read_bytes(),
    "gate": (REPO / "evals" / "gates" / "default.yaml").read_bytes(),
    "pipeline": (REPO / "datasets" / "sample" / "pipeline.yaml").read_bytes(),
}
# what YAML configs have broken on: anchors and aliases (a few lines can spell gigabytes), tags, flow syntax
YAML_FRAGMENTS = [b"&a ", b"*a", b"<<: *a\n", b"!!python/object:os.system ", b"!!binary ", b"{", b"}", b"[", b"]",
                  b": ", b"- ", b"\n  ", b"? ", b"|\n", b">-\n", b"'", b'"', b"#", b"%YAML 1.1\n", b"---\n", b"\t",
                  b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                  b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e]\n",
                  b"metrics: *e\n", b"rules: *e\n", b"1e999", b"9" * 5000, b"~", b"null", b"yes", b"[" * 3000]
LOADERS = {"suite": load_suite, "gate": load_gate, "pipeline": load_pipeline}


@st.composite
def yaml_bytes(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.one_of(st.sampled_from(YAML_FRAGMENTS), st.sampled_from(FRAGMENTS),
                               st.binary(min_size=1, max_size=8)))
        data[at:at + draw(st.integers(0, 8))] = piece
    return bytes(data)


@pytest.mark.parametrize("kind", list(CONFIG_SEEDS))
@FUZZ
@given(data=st.data())
def test_any_suite_gate_or_pipeline_file_is_a_config_or_a_config_error(kind, data, no_hang):
    content = data.draw(yaml_bytes(CONFIG_SEEDS[kind]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.yaml"
        path.write_bytes(content)
        try:
            with no_hang(20):
                LOADERS[kind](path)
        except ConfigError as exc:  # every problem on its own line, the file named
            assert exc.problems and all("\n" not in p for p in exc.problems), exc.problems
            assert str(path) in str(exc)


# ---------------------------------------------------------------- results.json (issue 16, item 5)

ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.text(max_size=8),
                      st.just([]), st.just({}), st.lists(st.one_of(st.integers(0, 9), st.text(max_size=3)), max_size=3),
                      st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=3), st.just(10 ** 30))


@functools.cache
def _base_results(classification: bool) -> str:
    results = fake_results(4, 3, classification=classification)
    results["training"]["log"] = results["training"]["log"][::30]  # a short log: a failing example stays readable
    return json.dumps(results)


@st.composite
def results_text(draw) -> str:
    """A real results.json with one to four values replaced, keys deleted or added, or the text cut short."""
    results = json.loads(_base_results(draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        node = results
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], (dict, list)) and node[key] and draw(st.integers(0, 3)):
                node = node[key]
                continue
            action = draw(st.integers(0, 5))
            if action == 0:
                del node[key]
            elif action == 1 and isinstance(node, dict):  # a key beyond the schema, as a newer assay may write
                node[draw(st.text(max_size=6))] = draw(ANY_VALUE)
            else:
                node[key] = draw(ANY_VALUE)
            break
    text = json.dumps(results)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@FUZZ
@given(text=results_text())
def test_any_results_json_renders_or_is_one_line_naming_the_file(text, no_hang):
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(Path(tmp))
        (project.reports / "run").mkdir(parents=True)
        path = project.reports / "run" / "results.json"
        path.write_text(text, encoding="utf-8")
        try:
            with no_hang(20):
                results, folder = load_results(project, "run")
        except AssayError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            return
        # what every reader does with a results.json that passed: the report, the comparison, the summary
        write_report(results, folder)
        compare_html(results, json.loads(text))
        show_eval(results, folder, console=Console(file=io.StringIO(), width=100))


def test_found_nan_in_keys_beyond_the_results_schema(tmp_path):
    """Unknown keys are allowed in results.json and not typed; one holding NaN reached the page's JSON."""
    results = fake_results(4, 2)
    results["models"][0]["latency"] = float("nan")
    results["regressions"]["previous"] = [{"id": results["examples"][0]["id"], "delta": -0.1, "seen": float("inf")}]
    store = Project(tmp_path)
    (store.reports / "run").mkdir(parents=True)
    (store.reports / "run" / "results.json").write_text(json.dumps(results))  # NaN and Infinity, as json writes them
    loaded, folder = load_results(store, "run")
    page = write_report(loaded, folder).read_text()
    data = json.loads(page.split('id="report-data">')[1].split("</script>")[0])  # strict JSON: no NaN in it
    assert data["models"][0] == {"key": "candidate", "label": "notes-student@v1.1.0", "kind": "candidate"}


def test_found_a_human_section_without_its_counts(tmp_path):
    """A counted human section missing its annotators crashed the page; now it is one line naming the field."""
    results = fake_results(4, 2)
    results["human"]["annotators"] = None
    store = Project(tmp_path)
    (store.reports / "run").mkdir(parents=True)
    (store.reports / "run" / "results.json").write_text(json.dumps(results))
    with pytest.raises(AssayError, match=r"human.*missing annotators") as caught:
        load_results(store, "run")
    assert "\n" not in str(caught.value) and "results.json" in str(caught.value)


def test_found_a_comparison_without_a_verdict(tmp_path):
    """`verdict` is optional in a comparison (n/a); the terminal summary read it as required."""
    results = fake_results(4, 2)
    for c in results["comparisons"]:
        c.pop("verdict", None)
    store = Project(tmp_path)
    (store.reports / "run").mkdir(parents=True)
    (store.reports / "run" / "results.json").write_text(json.dumps(results))
    loaded, folder = load_results(store, "run")
    out = io.StringIO()
    show_eval(loaded, folder, console=Console(file=out, width=200))
    assert ": n/a" in out.getvalue()
