"""The HTML report: hostile note text stays text everywhere, every section is there, compare refuses mixed suites."""

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from fake_results import HOSTILE, fake_results

from assay.errors import InputError
from assay.evals.judge import win_rate_ci
from assay.evals.report import compare_html, render, script_json, write_report

OUR_TAGS = {"html", "head", "meta", "title", "style", "body", "script", "header", "nav", "main", "section", "footer",
            "div", "span", "a", "h1", "h2", "h3", "p", "ul", "ol", "li", "strong", "small", "sup", "details",
            "summary", "table", "caption", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "svg", "line",
            "path", "rect", "circle", "text", "i", "label", "select", "option", "input", "button", "noscript", "code",
            "title"}


class Page(HTMLParser):
    """Tags, attributes and the text of each section (by id) of a rendered page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.scripts = [], [], []
        self.text: dict[str, str] = {}
        self._section, self._depth, self._in_script = ["page"], [0], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]
        if tag == "section":
            self._section.append(dict(attrs).get("id") or dict(attrs).get("aria-label") or "section")
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "section":
            self._section.pop()
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data
        else:
            key = self._section[-1]
            self.text[key] = self.text.get(key, "") + data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def hostile_page():
    results = fake_results(12, 5, hostile=HOSTILE, classification=True)
    html = render(results)
    return results, html, parse(html)


def test_hostile_text_creates_no_markup(hostile_page):
    _, html, page = hostile_page
    assert set(page.tags) <= OUR_TAGS, set(page.tags) - OUR_TAGS  # no <img>, <b>, <textarea> from the data
    assert page.tags.count("script") == 2  # the embedded data and the page's own code, nothing else
    assert not [a for a in page.attrs if a.startswith("on")]  # no event handler attribute anywhere
    assert "<script>window" not in html and "<img" not in html


@pytest.mark.parametrize("section", ["page", "verdict", "warnings", "metrics", "charts", "details", "lineage"])
def test_hostile_text_shows_as_text_in_every_section(hostile_page, section):
    # the fake puts HOSTILE into titles, rules, warnings, metric labels, n/a reasons, baseline labels,
    # export formats, class labels, dataset, teachers, providers, hardware and config values
    _, _, page = hostile_page
    assert HOSTILE in page.text[section], section


def test_embedded_json_cannot_close_its_script(hostile_page):
    results, _, page = hostile_page
    attrs, data = next(s for s in page.scripts if s[0].get("id") == "report-data")
    assert attrs.get("type") == "application/json"
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in data
    decoded = json.loads(data)  # and it round-trips to the exact hostile text
    assert decoded["examples"][0]["x"] == results["examples"][0]["text"]
    assert HOSTILE in decoded["examples"][0]["x"]
    assert json.loads(script_json({"t": "</script><!--\u2028"})) == {"t": "</script><!--\u2028"}


def test_only_the_pages_own_script_may_run(hostile_page):
    _, html, page = hostile_page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    code = next(s[1] for s in page.scripts if not s[0])
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch from any host


def test_sections_and_figures_present():
    results = fake_results(30, 4, classification=True)
    html = render(results)
    page = parse(html)
    for section in ("verdict", "metrics", "charts", "details", "examples", "lineage"):
        assert section in page.text, section
    assert "NO-SHIP" in page.text["verdict"]
    assert "Failing rule" in page.text["verdict"] and "1 rule passed" in page.text["verdict"]
    assert "no data:" not in html
    cand = results["scores"]["candidate"]["rougeL"] * 100
    assert f"{cand:.1f}" in page.text["metrics"]  # scaled by the metric's scale
    # the rule baseline has no perplexity: "n/a" with the reason as tooltip and footnote
    assert 'title="no token probabilities from a rule"' in html
    assert "n/a: rule:lead, perplexity: no token probabilities from a rule" in page.text["metrics"]
    assert "Confusion matrix" in page.text["details"]
    # the latency chart draws every example of an export that reported them (merged: 5), not only p50/p95;
    # the list stays out of the on-device table
    assert len(re.findall(r'class="pt"><title>merged: ', html)) == 5
    assert "latency_ms" not in page.text["details"] + page.text["charts"]


def test_human_preference_said_as_counted():
    """The demo's 14 blind answers (8 candidate, 2 base, 4 ties) and 9 identical pairs: each count in words, the
    tie rule named, the rate over the examples it covers; the counts per annotator in a table."""
    html = render(fake_results(30, 3))
    text = " ".join(parse(html).text["metrics"].split())
    base = "smollm2-135m-instruct (zero-shot)"
    assert (f"reviewers preferred the candidate in 8 of 14 blind answers, {base} in 2, and called 4 a tie; "
            "2 annotators answered.") in text
    assert "9 examples whose two outputs were identical were not shown to anyone and count as ties." in text
    # (8 + 4/2 + 9/2) / 23; the CI is the bootstrap over those 23 examples
    scores = [1.0] * 8 + [0.0] * 2 + [0.5] * 13
    rate, low, high = win_rate_ci(scores)
    assert round(rate, 3) == 0.63
    assert (f"Win rate with ties as half: 63% (95% CI {low * 100:.0f}% to {high * 100:.0f}%), over 23 of 30 examples "
            "(14 answered by people, 9 identical); 7 sent but not answered yet.") in text
    assert "side-by-side" not in text
    table = html[html.index('class="metrics human-counts"'):]
    rows = re.findall(r"<tr><th>([^<]*)</th><td[^>]*>(\d+)</td><td[^>]*>(\d+)</td><td[^>]*>(\d+)</td></tr>",
                      table[:table.index("</table>")])
    assert rows == [("ann", "4", "1", "2"), ("bob", "4", "1", "2"), ("all answers", "8", "2", "4"),
                    ("identical outputs (not sent, counted as ties)", "0", "0", "9")]


def test_human_summary_without_counts_asks_for_a_new_pull():
    results = fake_results(10, 3)
    results["human"] = {"win_rate": 0.71, "ci_low": 0.5, "ci_high": 0.9, "n": 14}  # as pull-eval wrote it before
    text = " ".join(parse(render(results)).text["metrics"].split())
    assert "71%" not in text
    assert ("without its counts (wins, losses, ties, identical pairs); run assay review pull-eval "
            f"{results['run_id']} --against base again to show them") in text


def test_delta_colours_follow_higher_is_better():
    results = fake_results(30, 4)
    html = render(results)
    cells = re.findall(r'<td class="num delta ([a-z]*)" title="([^"]*)"', html)
    by_row = [cells[i:i + 3] for i in range(0, len(cells), 3)]  # 3 baselines per metric row, rows in metric order
    assert len(by_row) == len(results["metrics"])
    verdict = {(c["metric"], c["baseline"]): c["verdict"] for c in results["comparisons"]}
    labels = {m["key"]: m["label"] for m in results["models"]}
    colours = set()
    for metric, row in zip(results["metrics"], by_row):
        for (cls, tip), key in zip(row, ["previous", "base", "rule:lead"]):
            if (metric["name"], key) not in verdict:  # the rule has no perplexity: nothing to compare
                assert (cls, tip) == ("", f"not compared with {labels[key]}")
                continue
            assert tip.startswith(f"candidate minus {labels[key]},")
            want = {"better": "good", "worse": "bad", "unclear": "unclear"}[verdict[(metric["name"], key)]]
            assert cls == ("" if metric["higher_is_better"] is None else want), (metric["name"], key)
            colours.add(cls)
    assert {"good", ""} <= colours  # the data exercise a coloured and an uncoloured row


def test_empty_inputs_say_no_data_and_no_review():
    html = render(fake_results(10, 3, empty=True, decision="NO GATE"))
    page = parse(html)
    assert page.text["charts"].count("no data:") == 5  # training, deltas, trend, latency, size
    assert "no human review" in page.text["lineage"]
    assert "no human preference review" in page.text["metrics"]
    assert "NO GATE" in page.text["verdict"] and "No ship rules were given" in page.text["verdict"]


def test_write_report_is_atomic(tmp_path):
    path = write_report(fake_results(8, 2), tmp_path / "run")
    assert path == tmp_path / "run" / "index.html" and path.read_text().startswith("<!doctype html>")
    before = path.read_text()
    bad = fake_results(8, 2)
    del bad["verdict"]
    with pytest.raises(InputError, match="verdict"):
        write_report(bad, tmp_path / "run")
    assert path.read_text() == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["index.html"]


def test_bad_results_name_the_field():
    results = fake_results(5, 2)
    results["schema"] = 2
    with pytest.raises(InputError, match=r"field 'schema', value 2"):
        render(results)
    results = fake_results(5, 2)
    results["verdict"]["decision"] = "MAYBE"
    with pytest.raises(InputError, match="verdict.decision"):
        render(results)


def test_compare_refuses_different_suite_versions():
    a, b = fake_results(10, 2), fake_results(10, 2, seed=1)
    b["suite"]["version"] = 2
    b["run_id"] = "notes-student-v1.2.0-summarize"
    with pytest.raises(InputError) as err:
        compare_html(a, b)
    message = str(err.value)
    assert "summarize v1" in message and "summarize v2" in message and "suite.version" in message
    b["suite"].update(version=1, name="classify")
    with pytest.raises(InputError, match="different suites"):
        compare_html(a, b)


def test_compare_renders_both_runs_escaped():
    a = fake_results(20, 2, hostile=HOSTILE)
    b = fake_results(20, 2, seed=3, decision="SHIP")
    b["models"][0]["label"] = "notes-student@v1.2.0"
    b["suite"]["data"] = a["suite"]["data"]  # the same examples (runs on different data are refused)
    html = compare_html(a, b)
    page = parse(html)
    assert set(page.tags) <= OUR_TAGS and page.tags.count("script") == 2
    assert "NO-SHIP" in page.text["runs"] and "SHIP" in page.text["runs"] and HOSTILE in page.text["runs"]
    data = json.loads(next(s[1] for s in page.scripts if s[0].get("id") == "report-data"))
    assert [m["key"] for m in data["models"]] == ["A", "B"] and len(data["examples"]) == 20
    worse = [e for e in data["examples"] if e["s"]["B"]["rougeL"] < e["s"]["A"]["rougeL"]]
    assert len(data["regressions"]["A"]) == len(worse)
