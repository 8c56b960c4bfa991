import hashlib
import json
import tracemalloc
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from assay.curation.config import IngestConfig
from assay.curation.ingest import REASONS, ingest
from assay.curation.ingest._rows import parse_date
from assay.errors import ConfigError, InputError
from assay.records import NOTE_SCHEMA

EXPORTS = Path(__file__).parent / "data" / "exports"
UTC = timezone.utc


def run(path, **cfg):
    result = ingest(path, IngestConfig(**cfg))
    assert_accounted(result)
    return result


def assert_accounted(result):
    """The invariant: every record read is kept or rejected with a reason, and the schema is the note schema."""
    assert sum(i["records"] for i in result.extra["inputs"]) == result.kept.height + result.rejects.height
    assert result.kept.schema == pl.Schema(NOTE_SCHEMA)
    assert result.rejects.columns == [*NOTE_SCHEMA, "reason", "step"]
    assert result.rejects["reason"].null_count() == 0
    assert set(result.rejects["step"]) <= {"ingest"}
    assert {r.split(":")[0] for r in result.rejects["reason"]} <= set(REASONS)
    assert result.kept["note_id"].n_unique() == result.kept.height
    assert set(result.kept["origin"]) <= {"export"} and not result.kept["synthetic"].any()


def rows(result):
    return {r["note_id"]: r for r in result.kept.to_dicts()}


def meta(row):
    return json.loads(row["metadata"]) if row["metadata"] else {}


# ---------------------------------------------------------------- formats


def test_json_array_with_key_aliases():
    path = EXPORTS / "notes.json"
    result = run(path)
    notes = rows(result)
    assert list(notes) == ["n1", "n2", "3"]  # id / uuid / note_id (an integer id becomes a string)
    n1, n2, n3 = notes.values()
    assert (n1["title"], n1["category"], n1["tags"]) == ("Dentist", "health", ["appointments", "family"])
    assert n1["created_at"] == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    # name -> title, body -> text, createdAt (epoch ms) -> created_at, folder -> category, "a; b" labels -> tags
    assert n2["title"] == "Q3 roadmap" and n2["text"].startswith("Met Ana")
    assert n2["created_at"] == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    assert (n2["category"], n2["tags"]) == ("work", ["meetings", "planning"])
    assert meta(n2) == {"pinned": True}
    # text, a +02:00 date converted to UTC, notebook -> category, unknown keys kept as metadata
    assert n3["created_at"] == datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
    assert (n3["category"], n3["title"], n3["tags"], meta(n3)) == ("errands", None, [], {"color": "yellow"})
    assert [r["source_line"] for r in notes.values()] == [1, 2, 3]  # the record's position in the array
    assert set(result.kept["source_format"]) == {"json"} and set(result.kept["source_file"]) == {str(path)}
    assert result.kept["task"].null_count() == 3
    assert result.extra["inputs"] == [{"file": str(path), "format": "json", "records": 3,
                                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]
    assert result.extra["warnings"] == []


def test_json_object_with_notes_list_and_single_note_object(tmp_path):
    result = run(EXPORTS / "wrapped.json")
    assert list(rows(result)) == ["w1", "w2"]
    assert rows(result)["w2"]["created_at"] == datetime(2025, 3, 1, tzinfo=UTC)  # epoch seconds
    assert result.extra["warnings"] == [f"{EXPORTS / 'wrapped.json'}: top-level keys besides 'notes' are not "
                                        "notes and were not read: exported_at, version"]
    single = tmp_path / "keep.json"
    single.write_text('{"title": "One", "text": "A single note object", "isPinned": false}')
    (note,) = run(single).kept.to_dicts()
    assert (note["title"], note["text"], meta(note), note["source_line"]) == ("One", "A single note object",
                                                                             {"isPinned": False}, 1)


def test_jsonl_lines_tags_and_blank_lines():
    result = run(EXPORTS / "notes.jsonl")
    notes = rows(result)
    assert {k: r["source_line"] for k, r in notes.items()} == {"j1": 1, "j2": 2, "j3": 4}  # line 3 is blank
    assert notes["j1"]["tags"] == ["home", "urgent"] and notes["j3"]["tags"] == ["travel"]
    assert notes["j1"]["created_at"] == datetime(2025, 2, 1, 7, 0, tzinfo=UTC)
    assert meta(notes["j2"]) == {"mood": "tired"}
    assert result.extra["inputs"][0]["records"] == 3


def test_csv_with_column_mapping():
    result = run(EXPORTS / "notes.csv", columns={"text": "Body", "title": "Heading"})
    got = result.kept.to_dicts()
    assert [r["source_line"] for r in got] == [2, 3, 6]  # the second row spans lines 3-5
    first, standup, party = got
    assert first["title"] == "Errand" and first["tags"] == ["home", "errands"] and first["category"] == "Personal"
    assert meta(first) == {"Starred": "yes"}  # unmapped, unaliased column; empty cells are not kept
    assert standup["text"] == "Standup notes:\nAna blocked on the API key.\nBen ships Friday."
    assert standup["created_at"] == datetime(2025, 3, 11, 9, 15, tzinfo=UTC)  # naive: taken as UTC
    assert standup["tags"] == ["work", "meetings"]
    assert (party["title"], party["category"], party["created_at"], party["metadata"]) == (None, None, None, None)
    # no id column: a content hash, stable across runs
    assert first["note_id"] == "n-" + hashlib.sha1(first["text"].encode()).hexdigest()[:12]
    assert rows(run(EXPORTS / "notes.csv", columns={"text": "Body"})).keys() == rows(result).keys()


def test_csv_semicolons_and_mapping_problems(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("id;note;tags\nx1;Semicolon separated, with a comma inside;a,b\n")
    (row,) = run(path, columns={"text": "note"}).kept.to_dicts()
    assert (row["note_id"], row["text"], row["tags"]) == ("x1", "Semicolon separated, with a comma inside", ["a", "b"])
    with pytest.raises(InputError) as err:
        run(path, columns={"text": "body"}, skip_invalid=True)  # a mapping mismatch spoils every row: always an error
    assert str(err.value) == (f"{path}:1: ingest.columns names columns the header lacks: text->body; "
                              "the header has: id, note, tags (field 'columns')")
    path.write_text("id,content,id\n1,a,2\n")
    with pytest.raises(InputError, match=r"excel.csv:1: column 3 of the header is repeated "
                                         r"\(field 'header', value 'id'\)"):
        run(path)
    with pytest.raises(ConfigError, match="unknown field 'txt' \\(did you mean 'text'\\?\\)"):
        run(path, columns={"txt": "body"})
    with pytest.raises(ConfigError, match="cannot be mapped"):
        run(EXPORTS / "vault", columns={"text": "body"})


def test_markdown_folder():
    root = EXPORTS / "vault"
    result = run(root)
    notes = rows(result)
    assert list(notes) == ["Welcome.md", "plain.txt", "projects/Bear note.markdown", "projects/alpha/plan.md"]
    welcome, plain, bear, plan = notes.values()
    # front matter: title, YAML date, a tag list (with "#" stripped) plus the inline #inbox, other keys as metadata
    assert welcome["title"] == "Welcome note"
    assert welcome["created_at"] == datetime(2025, 3, 14, tzinfo=UTC)
    assert welcome["tags"] == ["start", "obsidian", "inbox"]
    assert meta(welcome) == {"aliases": ["home"]}
    assert welcome["text"] == "# Not the title\n\nThis vault holds my notes. See #inbox for new ones."
    # no front matter: title falls back to the first "# heading", then to the file stem
    assert (plain["title"], plain["text"], plain["metadata"]) == ("plain", "Grocery list\n\nmilk, bread, apples", None)
    assert plan["title"] == "Alpha launch plan"
    assert plan["tags"] == ["project/alpha", "launch"]  # not #notatag (code), #42 (a number) or #code
    assert meta(plan) == {"folder": "projects/alpha"}
    # Bear style: "#a #b" tags string, created, category
    assert (bear["tags"], bear["category"], bear["title"]) == (["recipes", "dinner"], "cooking", "Bear note")
    assert bear["created_at"] == datetime(2025, 1, 5, 18, 0, tzinfo=UTC)
    assert result.kept["source_line"].null_count() == 4
    assert set(result.kept["source_format"]) == {"markdown"}
    assert [i["file"] for i in result.extra["inputs"]] == [str(root / n) for n in notes]
    assert result.extra["warnings"] == [f"{root}: skipped 1 file(s) that are not markdown notes (.png: 1)"]


def test_markdown_single_file_and_crlf():
    (row,) = run(EXPORTS / "bad" / "crlf.md").kept.to_dicts()
    assert (row["note_id"], row["title"], row["text"]) == ("crlf.md", "Windows note", "first\nsecond")


def test_enex_notes_keep_html():
    path = EXPORTS / "notebook.enex"
    result = run(path)
    lisbon, groceries, reading = result.kept.to_dicts()
    assert lisbon["title"] == "Trip to Lisbon"
    assert lisbon["text"].endswith("<en-note><div>Visit <b>Belém</b> &amp; the tram 28.</div><div><br/></div>"
                                   "<div>Pastéis at 10.</div></en-note>")
    assert lisbon["created_at"] == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    assert lisbon["tags"] == ["travel", "portugal"]
    assert meta(lisbon) == {"author": "Ana", "resources": 1, "source-url": "https://example.com/lisbon",
                            "updated": "20250315T101500Z"}
    assert groceries["text"] == "<en-note><ul><li>rice</li><li>beans</li></ul></en-note>"
    assert (reading["created_at"], reading["tags"]) == (None, ["books"])
    assert set(result.kept["source_format"]) == {"enex"}  # tells clean to strip the HTML
    assert result.kept["source_line"].to_list() == [1, 2, 3]
    assert all(i.startswith("n-") for i in result.kept["note_id"])


def test_folder_with_explicit_format_reads_every_file_of_it(tmp_path):
    for name in ("a.enex", "b.enex"):
        (tmp_path / name).write_bytes((EXPORTS / "notebook.enex").read_bytes())
    (tmp_path / "readme.md").write_text("not an enex")
    result = run(tmp_path, format="enex")
    assert [i["records"] for i in result.extra["inputs"]] == [3, 3]
    # same texts without ids: hash ids, with -2 for the repeats (dedupe decides what to do with them)
    ids = result.kept["note_id"].to_list()
    assert ids[3:] == [i + "-2" for i in ids[:3]]
    assert result.extra["warnings"] == [f"{tmp_path}: skipped 1 file(s) that are not enex notes (.md: 1)"]


def test_labeled_exports():
    (i1, i2) = run(EXPORTS / "instruction.jsonl").kept.to_dicts()
    assert (i1["task"], i1["instruction"], i1["input"], i1["output"]) == (
        "instruction", "Summarize the note in one sentence.", "Met Ana; Q3 roadmap; she owns pricing.",
        "Ana owns pricing in the Q3 roadmap.")
    assert i1["text"] == i1["input"] and i2["text"] == "List three fruits."  # input, else the instruction
    (chat,) = run(EXPORTS / "chat.jsonl").kept.to_dicts()
    assert chat["task"] == "chat" and chat["text"] == "When is the dentist?\n\nAnd what to bring?"
    assert [m["role"] for m in json.loads(chat["messages"])] == ["system", "user", "assistant", "user"]
    (summary,) = run(EXPORTS / "summary.json").kept.to_dicts()
    assert (summary["task"], summary["output"]) == ("summarize", "Pricing: 3 tiers vs 2.")
    assert summary["input"] == summary["text"] and summary["text"].startswith("Long meeting")


def test_labels_in_csv_and_unused_label_keys(tmp_path):
    path = tmp_path / "chats.csv"
    chat = json.dumps([{"role": "user", "content": "Hi, when is standup?"}, {"role": "assistant", "content": "9:15"}])
    path.write_text('id,messages\nc1,"' + chat.replace('"', '""') + '"\n')
    (row,) = run(path).kept.to_dicts()
    assert (row["task"], row["text"]) == ("chat", "Hi, when is standup?")
    assert json.loads(row["messages"])[1] == {"role": "assistant", "content": "9:15"}
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"id": "p1", "content": "A plain note", "output": "not a label without an instruction"}\n')
    (row,) = run(plain).kept.to_dicts()
    assert row["task"] is None and meta(row) == {"output": "not a label without an instruction"}


def test_duplicate_ids_across_files_name_both(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"uuid": "x1", "content": "first"}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "x0", "content": "other"}\n{"uuid": "x1", "content": "second"}\n')
    with pytest.raises(InputError) as err:
        ingest(tmp_path, IngestConfig(format="jsonl"))
    assert str(err.value) == (f"{tmp_path / 'b.jsonl'}:2: duplicate id 'x1': first at {tmp_path / 'a.jsonl'} line 1, "
                              f"again at {tmp_path / 'b.jsonl'} line 2 (field 'uuid', value 'x1')")
    result = run(tmp_path, format="jsonl", skip_invalid=True)
    assert (result.kept["note_id"].to_list(), result.rejects["reason"].to_list()) == (["x1", "x0"], ["duplicate_id"])


# ---------------------------------------------------------------- accepted oddities


@pytest.mark.parametrize("name, ids", [
    ("bom.json", ["bom1"]), ("bom.jsonl", ["bom1", "bom2"]), ("bom.csv", ["bom1"]),
])
def test_utf8_bom_is_accepted(name, ids):
    result = run(EXPORTS / "bad" / name)
    assert result.kept["note_id"].to_list() == ids  # not "\ufeffid" as a column or key


@pytest.mark.parametrize("name", ["crlf.csv", "crlf.jsonl"])
def test_crlf_is_normalized(name):
    first, second = run(EXPORTS / "bad" / name).kept.to_dicts()
    assert "\r" not in first["text"] + second["text"] and "\n" in first["text"]
    assert second["source_line"] == (4 if name == "crlf.csv" else 2)


def test_empty_json_array_is_zero_rows_and_a_warning():
    path = EXPORTS / "bad" / "empty_array.json"
    for skip in (False, True):
        result = run(path, skip_invalid=skip)
        assert (result.kept.height, result.rejects.height) == (0, 0)
        assert result.extra["warnings"] == [f"{path}: empty JSON array, no notes"]


# ---------------------------------------------------------------- bad input, in both modes

# file, line in the error, field, start of the message after "file:line: ", reasons with skip_invalid, kept
BAD = [
    ("invalid.json", 3, None, "record 2: invalid JSON at column 42: Expecting ',' delimiter; the rest of the file",
     ["invalid_json"], 1),
    ("invalid.jsonl", 2, None, "invalid JSON at column 31: Expecting property name", ["invalid_json"], 2),
    ("invalid_utf8.jsonl", 2, None, "invalid UTF-8: byte 0xe9 at byte offset 58", ["invalid_utf8"], 2),
    ("invalid_utf8.json", 3, None, "record 2: invalid UTF-8: byte 0xff at line 3, byte offset 64", ["invalid_utf8"], 2),
    ("invalid_utf8.csv", 3, None, "invalid UTF-8: byte 0xe9 at line 3, byte offset 24", ["invalid_utf8"], 2),
    ("invalid_utf8.md", 4, None, "invalid UTF-8: byte 0xc3 at byte offset 22", ["invalid_utf8"], 0),
    ("invalid_utf8.enex", 4, None, "record 2: invalid UTF-8: byte 0xff at line 4, byte offset 122",
     ["invalid_utf8"], 1),
    ("missing_field.json", 6, "content", "record 2: the record has no text", ["missing_field:content"] * 2, 1),
    ("mistyped.jsonl", 2, "content", "expected a string, got number",
     ["bad_type:content", "bad_type:content", "bad_type:tags", "bad_date", "bad_date", "bad_type:id"], 1),
    ("duplicate_ids.json", 10, "id", "record 3: duplicate id 'd1': first at record 1 (line 2), again at record 3 "
     "(line 10)", ["duplicate_id", "duplicate_id"], 2),
    ("not_object.json", 1, None, "record 2: a note must be a JSON object, got string", ["not_an_object"] * 3, 1),
    ("not_object.jsonl", 2, None, "a note must be a JSON object, got array", ["not_an_object"], 1),
    ("short_row.csv", 3, None, "row has 2 fields, the header has 3", ["bad_row"], 1),
    ("bad_front_matter.md", 3, None, "invalid YAML front matter: expected ',' or ']'", ["bad_front_matter"], 0),
    ("broken.enex", 4, None, "record 2: invalid XML at column 49: mismatched tag", ["invalid_xml"], 1),
    ("unsafe.enex", 3, None, "record 1: entity declarations are not allowed", ["unsafe_xml"], 0),
    ("bad_chat.jsonl", 1, "messages", "a chat needs at least one user message",
     ["bad_value:messages", "bad_value:messages", "bad_type:messages", "missing_field:output"], 0),
    ("empty.json", None, None, "empty export", ["empty_export"], 0),
    ("empty.jsonl", None, None, "empty export", ["empty_export"], 0),
    ("empty.csv", None, None, "empty export", ["empty_export"], 0),
    ("empty.enex", None, None, "empty export", ["empty_export"], 0),
]


@pytest.mark.parametrize("name, line, field, message, reasons, kept", BAD, ids=[b[0] for b in BAD])
def test_bad_input_stops_with_a_located_error(name, line, field, message, reasons, kept):
    path = EXPORTS / "bad" / name
    with pytest.raises(InputError) as err:
        ingest(path, IngestConfig())
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(err.value).startswith(where + message), str(err.value)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)


@pytest.mark.parametrize("name, line, field, message, reasons, kept", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_quarantined_with_skip_invalid(name, line, field, message, reasons, kept):
    path = EXPORTS / "bad" / name
    result = run(path, skip_invalid=True)
    assert result.rejects["reason"].to_list() == reasons
    assert result.kept.height == kept
    first = result.rejects.row(0, named=True)
    assert first["source_file"] == str(path) and first["origin"] == "export"
    # the reject says what the strict run would have said, and keeps the raw text for a person to read
    with pytest.raises(InputError) as err:
        ingest(path, IngestConfig())
    assert meta(first)["ingest_error"] == str(err.value)
    assert first["text"] is not None and len(first["text"]) <= 2_000


def test_quarantined_records_keep_their_raw_text_and_position():
    result = run(EXPORTS / "bad" / "mistyped.jsonl", skip_invalid=True)
    rejects = result.rejects.to_dicts()
    assert [r["source_line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    assert rejects[0]["text"] == '{"id": "t2", "content": 42}' and rejects[0]["note_id"] == "t2"
    assert meta(rejects[4])["ingest_error"].endswith(
        "cannot read this date: '03/04/2025' could be day/month or month/day; use ISO 8601 (YYYY-MM-DD) "
        "(field 'date', value '03/04/2025')")
    dupes = run(EXPORTS / "bad" / "duplicate_ids.json", skip_invalid=True).rejects.to_dicts()
    assert [(d["note_id"], d["text"], d["source_line"]) for d in dupes] == [
        ("d1", "first again, different text", 3), ("d1", "and a third time", 4)]
    broken = run(EXPORTS / "bad" / "invalid.json", skip_invalid=True).rejects.to_dicts()
    assert broken[0]["text"].startswith('{"id": "b", "content": "missing comma" "x": 1}')
    assert broken[0]["source_line"] == 2


def test_escaped_lone_surrogate_is_refused(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "s1", "content": "broken emoji \\ud83d here"}\n')
    with pytest.raises(InputError, match=r"s.jsonl:1: text holds a lone surrogate \\ud83d"):
        ingest(path, IngestConfig())
    assert run(path, skip_invalid=True).rejects["reason"].to_list() == ["invalid_utf8"]


def test_entity_expansion_is_refused(tmp_path):
    path = tmp_path / "laughs.enex"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE x [\n<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;">\n]>'
                    "\n<en-export><note><content>&b;</content></note></en-export>\n")
    with pytest.raises(InputError, match="laughs.enex:3: record 1: entity declarations are not allowed"):
        ingest(path, IngestConfig())


def test_yaml_aliases_are_refused_in_front_matter(tmp_path):
    path = tmp_path / "bomb.md"
    path.write_text("---\na: &a [x, x, x]\nb: [*a, *a, *a]\n---\nbody\n")
    with pytest.raises(InputError, match="bomb.md:2: YAML aliases"):
        ingest(path, IngestConfig())


def test_files_that_are_not_exports(tmp_path):
    with pytest.raises(InputError, match="nope.json: no such file or folder"):
        ingest(tmp_path / "nope.json", IngestConfig())
    (tmp_path / "notes.xlsx").write_bytes(b"PK")
    with pytest.raises(InputError, match=r"notes.xlsx: cannot tell the export format from the extension '.xlsx'"):
        ingest(tmp_path / "notes.xlsx", IngestConfig())
    (tmp_path / "notes.xlsx").rename(tmp_path / "notes.data")
    (tmp_path / "notes.data").write_text('{"content": "explicit format wins"}\n')
    assert run(tmp_path / "notes.data", format="jsonl").kept["text"].to_list() == ["explicit format wins"]
    empty = tmp_path / "empty_vault"
    (empty / ".obsidian").mkdir(parents=True)
    (empty / ".obsidian" / "hidden.md").write_text("config, not a note")
    with pytest.raises(InputError, match=r"empty_vault: empty export: no markdown files \(.md, .markdown, .txt\)"):
        ingest(empty, IngestConfig())


def test_json_lines_in_a_json_file_get_a_hint(tmp_path):
    path = tmp_path / "actually_lines.json"
    path.write_text('{"content": "a"}\n{"content": "b"}\n')
    with pytest.raises(InputError, match=r"actually_lines.json:2: record 2: invalid JSON at column 1: Extra data "
                                         r"\(one JSON object per line is JSON Lines: set ingest.format=jsonl\)"):
        ingest(path, IngestConfig())


# ---------------------------------------------------------------- size


def test_50mb_note_is_refused_without_holding_it(tmp_path):
    big = b"x" * (50 * 1024 * 1024)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"id": "a", "content": "ok"}\n{"id": "big", "content": "' + big + b'"}\n'
                     b'{"id": "c", "content": "ok"}\n')
    with pytest.raises(InputError, match=r"big.jsonl:2: line is over 7,048,576 bytes, too large for a note within "
                                         r"max_note_bytes=1,000,000"):
        ingest(path, IngestConfig(max_note_bytes=1_000_000))
    tracemalloc.start()
    try:
        result = run(path, skip_invalid=True, max_note_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # the 50 MB line streamed past, never held
    assert result.kept["note_id"].to_list() == ["a", "c"]
    assert result.rejects["reason"].to_list() == ["too_large"]
    assert len(result.rejects["text"][0]) == 2_000
    assert result.extra["inputs"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    note = tmp_path / "big.md"
    note.write_bytes(big)
    with pytest.raises(InputError, match=r"big.md: file is 52,428,800 bytes, larger than max_note_bytes=5,000,000"):
        ingest(note, IngestConfig())  # refused from its size alone
    assert run(note, skip_invalid=True).rejects["reason"].to_list() == ["too_large"]


def test_note_over_max_note_bytes(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps([{"id": "a", "content": "é" * 600}, {"id": "b", "content": "short"}]))
    with pytest.raises(InputError, match=r"record 1: text is 1,200 bytes, larger than max_note_bytes=1,000 "
                                         r"\(field 'content'\)"):
        ingest(path, IngestConfig(max_note_bytes=1_000))
    result = run(path, skip_invalid=True, max_note_bytes=1_000)
    assert (result.kept["note_id"].to_list(), result.rejects["reason"].to_list()) == (["b"], ["too_large"])


# ---------------------------------------------------------------- dates, progress, everything at once


@pytest.mark.parametrize("value, expected", [
    ("2025-03-14T09:30:00Z", datetime(2025, 3, 14, 9, 30)),
    ("2025-03-14", datetime(2025, 3, 14)),
    ("2025-03-14 09:30:00+02:00", datetime(2025, 3, 14, 7, 30)),
    ("2025-03-14T09:30:00", datetime(2025, 3, 14, 9, 30)),  # naive: taken as UTC
    ("20250314T093000Z", datetime(2025, 3, 14, 9, 30)),  # ENEX
    (1741944600, datetime(2025, 3, 14, 9, 30)),
    (1741944600123, datetime(2025, 3, 14, 9, 30, 0, 123000)),
    ("1741944600", datetime(2025, 3, 14, 9, 30)),
    (1741944600.5, datetime(2025, 3, 14, 9, 30, 0, 500000)),
    (date(2025, 3, 14), datetime(2025, 3, 14)),  # YAML front matter
    ("Fri, 14 Mar 2025 09:30:00 +0000", datetime(2025, 3, 14, 9, 30)),
    ("14/03/2025", datetime(2025, 3, 14)),  # day > 12: not ambiguous
])
def test_dates_become_utc(value, expected):
    assert parse_date(value) == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize("value", ["next tuesday-ish", "03/04/2025", "March 2025", True, float("nan"), [2025], "10:30"])
def test_unreadable_dates_are_refused(value):
    with pytest.raises((ValueError, OverflowError)):
        parse_date(value)


def test_progress_counts_every_record():
    seen = []
    result = ingest(EXPORTS / "notes.jsonl", IngestConfig(), progress=seen.append)
    assert sum(seen) == result.rows_in == 3


def test_every_fixture_accounts_for_every_record():
    for path in sorted(EXPORTS.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".csv", ".md", ".enex"} and "vault" not in path.parts:
            columns = {"text": "Body"} if path.name == "notes.csv" else {}
            run(path, skip_invalid=True, columns=columns)
