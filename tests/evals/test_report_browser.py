"""The report in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Opens the page from file://, reads the verdict, filters, searches, pages, and checks that hostile note
text neither runs nor fetches anything, with no console error along the way.
"""

import shutil

import pytest
from fake_results import HOSTILE, fake_results

from assay.evals.report import PAGE_SIZE, compare_html, write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, path):
    """A page with every console error, page error and request recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"errors": [], "requests": []}
    page.on("console", lambda msg: msg.type == "error" and seen["errors"].append(msg.text))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("request", lambda req: seen["requests"].append(req.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#ex-count[data-count]")
    return page, seen


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


def count(page) -> int:
    return int(page.get_attribute("#ex-count", "data-count"))


def test_report_in_chromium(browser, tmp_path):
    results = fake_results(80, 4, hostile=HOSTILE)
    path = write_report(results, tmp_path / "run")
    page, seen = open_page(browser, path)

    assert page.inner_text("#verdict .decision") == "NO-SHIP"
    assert page.is_visible("#verdict")
    assert count(page) == 80 and page.locator("article.ex").count() == PAGE_SIZE

    # hostile text: shown as written, nothing ran, no element was made from it
    first_note = page.locator("article.ex .note .prose").first.inner_text()
    assert "<script>window.__pwned=1</script>" in first_note
    assert '<img src=x onerror="window.__pwned=1">' in first_note
    first = page.locator("article.ex").first
    assert first.locator("h3").inner_text() == results["examples"][0]["title"]
    assert first.locator(".tag").inner_text() == results["examples"][0]["category"]
    texts = ([first.locator(".out.ref .prose").inner_text()]
             + first.locator(".out:not(.cand):not(.ref) .prose").all_inner_texts())
    assert len(texts) == 4 and all("<script>window.__pwned=1</script>" in t for t in texts)  # reference + 3 baselines
    assert "window.__pwned=1" in first.locator(".out.cand .prose").inner_text()  # the diffed candidate
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0 and page.locator("textarea").count() == 0

    # regressions only, against each baseline in turn
    page.check("#f-regressions")
    for key in ("previous", "base", "rule:lead"):
        page.select_option("#f-baseline", key)
        want = len(results["regressions"][key])
        assert 0 < want < 80, key  # the data make the filter change the count
        assert count(page) == want and page.locator("article.ex").count() == min(PAGE_SIZE, want)
        first = page.locator("article.ex").first.inner_text()
        assert results["regressions"][key][0]["id"] in first  # the largest drop comes first
    page.uncheck("#f-regressions")
    assert count(page) == 80

    # category, search (debounced), paging
    category = results["examples"][5]["category"]
    page.select_option("#f-category", category)
    assert count(page) == sum(e["category"] == category for e in results["examples"])
    page.select_option("#f-category", "")
    needle = results["examples"][7]["id"]
    page.fill("#f-search", needle)
    expect(page.locator("#ex-count")).to_have_attribute("data-count", "1")  # polls; the CSP forbids eval
    page.fill("#f-search", "")
    expect(page.locator("#ex-count")).to_have_attribute("data-count", "80")
    page.click("#p-next")
    assert "showing 26\u201350" in page.inner_text("#ex-count")
    assert page.locator("ins, del").count() > 0  # the candidate is diffed against the reference

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert seen["errors"] == []
    assert seen["requests"] and all(url.startswith("file://") for url in seen["requests"]), seen["requests"]
    page.close()


def test_compare_in_chromium(browser, tmp_path):
    a, b = fake_results(40, 2, hostile=HOSTILE), fake_results(40, 2, seed=5, decision="SHIP")
    b["suite"]["data"] = a["suite"]["data"]  # the same examples (runs on different data are refused)
    path = tmp_path / "compare.html"
    path.write_text(compare_html(a, b), encoding="utf-8")
    page, seen = open_page(browser, path)
    assert page.locator(".verdict .decision").all_inner_texts() == ["NO-SHIP", "SHIP"]
    page.check("#f-regressions")
    worse = sum(eb["scores"]["candidate"]["rougeL"] < ea["scores"]["candidate"]["rougeL"]
                for ea, eb in zip(a["examples"], b["examples"]))
    assert 0 < worse < 40 and count(page) == worse
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert seen["errors"] == [] and all(url.startswith("file://") for url in seen["requests"])
    page.close()
