import os
import random
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from assay.errors import NotFoundError, StoreError
from assay.records import notes_frame
from assay.store import DatasetStore, content_hash


def _frame(n: int, prefix: str = "n") -> pl.DataFrame:
    return notes_frame({"note_id": f"{prefix}{i}", "text": f"note number {i} about things"} for i in range(n))


def test_write_read_and_manifest(tmp_path):
    store = DatasetStore(tmp_path)
    v1 = store.write("notes", _frame(5), step="curate", config={"a": 1}, dropped={"too_short": 2})
    v2 = store.write("notes", _frame(7), step="curate", config={"a": 2}, parents=[v1.ref])
    assert (v1.ref, v2.ref) == ("notes@v1", "notes@v2")
    got = store.get("notes")
    assert got.manifest["version"] == "v2" and got.manifest["parents"] == ["notes@v1"]
    for key in ("name", "version", "parents", "step", "config", "rows", "content_hash", "created_at"):
        assert key in got.manifest
    assert got.data().height == 7 and got.manifest["rows"] == 7
    assert store.get("notes@v1").manifest["dropped"] == {"too_short": 2}
    assert got.manifest["content_hash"] == content_hash(got.data())
    assert [v.manifest["version"] for v in store.versions("notes")] == ["v1", "v2"]


def test_versions_are_immutable_and_hash_is_content_based(tmp_path):
    store = DatasetStore(tmp_path)
    a = store.write("x", _frame(3), step="s", config={})
    b = store.write("x", _frame(3), step="s", config={})
    assert a.manifest["content_hash"] == b.manifest["content_hash"]
    assert a.path != b.path and (a.path / "data.parquet").exists()
    c = store.write("x", _frame(4), step="s", config={})
    assert c.manifest["content_hash"] != a.manifest["content_hash"]


def test_unknown_names_suggest(tmp_path):
    store = DatasetStore(tmp_path)
    store.write("notes", _frame(1), step="s", config={})
    with pytest.raises(NotFoundError, match="Did you mean 'notes'"):
        store.get("note")
    with pytest.raises(NotFoundError, match="v1"):
        store.get("notes@v9")
    with pytest.raises(StoreError):
        store.write("../evil", _frame(1), step="s", config={})


WRITER = """
import sys, polars as pl
from assay.records import notes_frame
from assay.store import DatasetStore
store = DatasetStore(sys.argv[1])
frame = notes_frame({"note_id": f"n{i}", "text": "x" * 200 + str(i)} for i in range(200_000))
while True:
    store.write("big", frame, step="s", config={})
    print("wrote", flush=True)
"""


@pytest.mark.parametrize("attempt", range(3))
def test_kill_during_write_leaves_only_complete_versions(tmp_path, attempt):
    store = DatasetStore(tmp_path)
    first = store.write("big", _frame(10), step="s", config={})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # at least one full write done, so the kill lands in a later one
    time.sleep(random.uniform(0.0, 0.6))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    versions = store.versions("big")
    assert versions[0].manifest == first.manifest and versions[0].data().equals(first.data())
    for v in versions:  # every visible version is whole: manifest, data and hash agree
        data = v.data()
        assert data.height == v.manifest["rows"]
        assert content_hash(data) == v.manifest["content_hash"]
    # the next write after a crash gets the next number and sweeps the dead writer's temp folder
    nxt = store.write("big", _frame(2), step="s", config={})
    assert nxt.manifest["version"] == f"v{len(versions) + 1}"
    assert not [p for p in (tmp_path / "big").iterdir() if p.name.startswith(".tmp-")]


def test_a_truncated_version_is_one_line_from_the_cli(tmp_path, assay):
    store = DatasetStore(tmp_path / "datasets")
    version = store.write("notes", _frame(50), step="curate", config={})
    data = version.path / "data.parquet"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(StoreError, match=r"data.parquet: notes@v1 cannot be read \(parquet: "):
        version.data()
    proc = assay("train", "training/configs/demo.yaml", "data.dataset=notes@v1", home=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "notes@v1 cannot be read" in proc.stderr
