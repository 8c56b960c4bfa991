"""The real Argilla UI in Debian's chromium (never a downloaded browser): an annotator signs in, opens the pushed
dataset, sees the teachers' suggestions, edits the suggested summary and submits; `assay review pull` reads
exactly that edit with that reviewer. Notes and teachers' outputs holding markup show as text: nothing in them
runs and nothing is fetched, and the UI asks no host but the server for anything (fonts included)."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from conftest import annotator, make_version, server_records

from assay.store import DatasetStore

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' (playwright)")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Debian's chromium is not installed: apt-get install -y chromium")

WATCH = "http://198.51.100.7"  # TEST-NET-2 (RFC 5737): never routed; a request to it shows only as a request event
PAYLOADS = (
    "<img src=x onerror=\"top.__pwned='img'\">",
    f"<img src={WATCH}/img.png onerror=\"top.__pwned='img2'\">",
    "<script>top.__pwned='script'</script>",
    "<svg onload=\"top.__pwned='svg'\"><circle r=\"1\"/></svg>",
    f"<b>bold</b> <a href=\"javascript:top.__pwned='href'\">a link</a> <iframe src=\"{WATCH}/frame\"></iframe>",
    f"[a markdown link]({WATCH}/link) and ![an image]({WATCH}/md.png), AT&T &amp; 1 < 2",
)
HOSTILE = "\n".join(PAYLOADS)
# a teacher on an OpenAI-compatible server: Argilla refused its spec as a suggestion agent (the `@`)
TEACHERS = ("rule:lead", "openai-compatible:tiny@http://127.0.0.1:9/v1")


def push(server, *args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "assay", "review", "push", *args], env=server.env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


@contextlib.contextmanager
def signed_in(server, user: dict):
    """A page of headless Debian chromium signed in to the UI as `user`, and the list of every URL the
    browser asked for (frames included)."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            requested: list[str] = []
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            page.goto(f"{server.url}/sign-in")
            page.locator("input[name=Username]").fill(user["username"])
            page.locator("input[name=Password]").fill(user["password"])
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r".*/$"), timeout=30_000)
            yield page, requested
        finally:
            browser.close()


def open_dataset(page, server, name: str):
    dataset_id = next(iter(server_records(server, name).values()))["dataset_id"]
    page.goto(f"{server.url}/dataset/{dataset_id}/annotation-mode")


def test_annotator_edits_a_suggestion_in_the_ui(server):
    make_version(server.home, "browser", 5)
    push(server, "browser")
    edited = "Water the tomatoes on Sunday and order the compost."

    with signed_in(server, annotator(server, "dana")) as (page, _):
        open_dataset(page, server, "browser-v1-summarize")
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

    out = subprocess.run([sys.executable, "-m", "assay", "review", "pull", "browser"], env=server.env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    reviewed = DatasetStore(server.home / "datasets").get("browser")
    rows = {r["note_id"]: r for r in reviewed.data().iter_rows(named=True)}
    assert rows["browser-note-00000"]["output"] == edited
    assert rows["browser-note-00000"]["reviewers"] == ["dana"]
    assert rows["browser-note-00000"]["decision"] == "corrected"
    assert [r for r in rows.values() if r["decision"]] == [rows["browser-note-00000"]]


def _nothing_ran(page) -> None:
    page.wait_for_timeout(1500)  # onerror/onload handlers fire after the element is in the page
    ran = {frame.url: frame.evaluate("() => window.__pwned || (window.top && window.top.__pwned) || null")
           for frame in page.frames}
    assert not any(ran.values()), ran


def _left_the_server(requested: list[str]) -> list[str]:
    return [u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urlsplit(u).hostname != "127.0.0.1"]


def test_markup_in_notes_and_teacher_outputs_shows_as_text(server):
    """Planted script in a note, a teacher's summary and a teacher's label: the UI shows it as the text it is,
    runs none of it, fetches nothing it names, and loads nothing (fonts included) from another host."""
    make_version(server.home, "hostile", 3, teachers=TEACHERS, texts=lambda i: HOSTILE if i == 0 else f"Note {i}.",
                 outputs=lambda i: (f"Summary: {HOSTILE}", f"Other: {HOSTILE}") if i == 0 else (f"S{i}", f"O{i}"))
    push(server, "hostile")
    label = "<img src=x onerror=\"top.__pwned='label'\">"
    make_version(server.home, "hostile-labels", 2, task="classify", teachers=TEACHERS, texts=lambda i: HOSTILE,
                 outputs=lambda i: (json.dumps({"category": "home", "importance": "low", "context": "personal"}),
                                    json.dumps({"category": label, "importance": "high", "context": "work"})))
    push(server, "hostile-labels", "--task", "classify")
    records = server_records(server, "hostile-v1-summarize")
    agents = {s["agent"] for r in records.values() for s in r["suggestions"]}
    assert agents == {"rule:lead", "openai-compatible:tiny at 127.0.0.1:9/v1"}
    # the search index holds the text the UI shows, not the escapes ("1 < 2" went out as "1 &lt; 2")
    dataset_id = next(iter(records.values()))["dataset_id"]
    with server.owner as owner:
        found = {q: owner.post(f"/api/v1/me/datasets/{dataset_id}/records/search", params={"limit": 10},
                               json={"query": {"text": {"q": q}}}).json()["total"] for q in ("lt", "onerror")}
    assert found == {"lt": 0, "onerror": 1}

    with signed_in(server, annotator(server, "erin")) as (page, requested):
        open_dataset(page, server, "hostile-v1-summarize")
        summary = page.locator("[contenteditable]").first
        summary.wait_for(timeout=30_000)
        fields = page.locator(".text_field_component .content-area")
        note, guide = fields.nth(0).inner_text(), fields.nth(2).inner_text()
        assert note.strip() == f"Garden 0\n\n{HOSTILE}"  # every payload readable, character for character
        assert "selected: rule:lead" in guide and "openai-compatible:tiny@http://127.0.0.1:9/v1: score" in guide
        assert summary.inner_text().strip() == f"Summary: {HOSTILE}"
        page.get_by_text(f"Other: {PAYLOADS[0]}").wait_for(timeout=10_000)
        assert page.locator(".content-area :is(img, svg, script, iframe, a, b)").count() == 0  # no element made
        _nothing_ran(page)

        open_dataset(page, server, "hostile-labels-v1-classify")
        page.get_by_text(label, exact=True).first.wait_for(timeout=30_000)  # the teacher's label, as text
        assert (page.locator(".text_field_component .content-area").first.inner_text().strip()
                == f"Garden 0\n\n{HOSTILE}")
        _nothing_ran(page)

    assert _left_the_server(requested) == []
    assert any(u.endswith(".css") for u in requested)  # the stylesheets did load, from the server
