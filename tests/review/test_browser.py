"""The real Argilla UI in Debian's chromium (never a downloaded browser): an annotator signs in, opens the pushed
dataset, sees the teachers' suggestions, edits the suggested summary and submits; `assay review pull` reads
exactly that edit with that reviewer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from assay.store import DatasetStore
from conftest import annotator, make_version, server_records

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' (playwright)")
CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: apt-get install -y chromium")
def test_annotator_edits_a_suggestion_in_the_ui(server):
    make_version(server.home, "browser", 5)
    subprocess.run([sys.executable, "-m", "assay", "review", "push", "browser"], env=server.env(), check=True,
                   capture_output=True, timeout=300)
    dana = annotator(server, "dana")
    records = server_records(server, "browser-v1-summarize")
    dataset_id = next(iter(records.values()))["dataset_id"]
    edited = "Water the tomatoes on Sunday and order the compost."

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server.url}/sign-in")
            page.locator("input[name=Username]").fill(dana["username"])
            page.locator("input[name=Password]").fill(dana["password"])
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r".*/$"), timeout=30_000)
            page.goto(f"{server.url}/dataset/{dataset_id}/annotation-mode")
            # the least-agreement record comes first (note 0), with the selected output and the other teacher's
            summary = page.locator("[contenteditable]").first
            summary.wait_for(timeout=30_000)
            assert summary.inner_text().strip() == "Water the tomatoes on day 0."
            page.get_by_text("Garden chores for note 0: tomatoes, compost.").wait_for(timeout=10_000)
            summary.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(edited)
            with page.expect_response(lambda r: "/responses" in r.url and r.request.method in ("POST", "PUT")) as sent:
                page.get_by_role("button", name=re.compile("Submit")).click()
            assert sent.value.status in (200, 201), sent.value.text()
        finally:
            browser.close()

    out = subprocess.run([sys.executable, "-m", "assay", "review", "pull", "browser"], env=server.env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    reviewed = DatasetStore(server.home / "datasets").get("browser")
    rows = {r["note_id"]: r for r in reviewed.data().iter_rows(named=True)}
    assert rows["browser-note-00000"]["output"] == edited
    assert rows["browser-note-00000"]["reviewers"] == ["dana"]
    assert rows["browser-note-00000"]["decision"] == "corrected"
    assert [r for r in rows.values() if r["decision"]] == [rows["browser-note-00000"]]
