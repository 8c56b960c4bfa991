"""benchmarks/record.py writes a bench's figures; benchmarks/results.py turns the records into RESULTS.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import results  # noqa: E402
from benchmarks.record import Row, options, record  # noqa: E402


def test_records_render_as_tables_and_the_rest_as_not_run(tmp_path):
    record("dedupe", [Row("exact+near, 100,000 notes: seconds", "1.29", baseline="datasketch 24.20 s",
                          ratio="18.8x faster", target=">= 10x faster", met=True),
                      Row("peak RSS", "998 MB")], folder=tmp_path)
    record("pii", [Row("notes without PII redacted", "1/69", target="0", met=False)], "--size 100", folder=tmp_path)

    text = results.render(tmp_path, ["dedupe", "pii", "quality", "train"])

    saved = json.loads((tmp_path / "dedupe.json").read_text())
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["python"] and saved["date"].endswith("+00:00")
    assert "| exact+near, 100,000 notes: seconds | 1.29 | datasketch 24.20 s | 18.8x faster | >= 10x faster | yes |" \
        in text
    assert "| peak RSS | 998 MB |  |  |  |  |" in text
    assert "| notes without PII redacted | 1/69 |  |  | 0 | **no** |" in text
    assert "| [pii](#pii) |" in text and "options changed from the defaults: --size 100 | 0 of 1 |" in text
    not_run = text.split("## Not run on this machine", 1)[1]
    assert not_run.split() == ["-", "quality:", "`make", "bench-quality`", "-", "train:", "`make", "bench-train`"]
    assert text.index("## dedupe") < text.index("## pii")
    assert results.render(tmp_path, ["dedupe", "pii", "quality", "train"]) == text  # same records, same file


def test_every_bench_script_is_listed_until_it_has_a_record(tmp_path):
    text = results.render(tmp_path)
    scripts = sorted(p.stem.removeprefix("bench_") for p in (REPO / "benchmarks").glob("bench_*.py"))
    assert len(scripts) >= 10
    assert [line for line in text.splitlines() if line.startswith("- ")] == \
        [f"- {name}: `make bench-{name}`" for name in scripts]


def test_options_names_what_a_run_changed_from_the_defaults():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    assert options(parser, parser.parse_args([])) == ""
    assert options(parser, parser.parse_args(["--n", "2000", "--quick", "--child", "x"])) == "--n 2000 --quick"


def test_a_broken_record_is_named(tmp_path):
    (tmp_path / "semantic.json").write_text('{"bench": "semantic"}')
    with pytest.raises(ValueError, match=r"semantic\.json: not a bench record \(no machine, rows\)"):
        results.render(tmp_path)
