import polars as pl

from assay.curation.clean import clean, normalize, quality_reason, strip_html, word_count
from assay.curation.config import CleanConfig
from assay.records import notes_frame


def test_normalize_unicode_whitespace_and_line_endings():
    raw = "Caf\u0065\u0301 \u200bmeeting\r\n\r\n\r\n\r\nTeam:\t\tAna,  Ben   \r\nﬁnal"
    assert normalize(raw) == "Café meeting\n\nTeam: Ana, Ben\nfinal"


def test_strip_html_from_enex_content():
    enml = ('<?xml version="1.0"?><en-note><div>Buy <b>milk</b> &amp; eggs</div><div><br/></div>'
            '<div>Call Ana</div></en-note>')
    text = normalize(strip_html(enml))
    assert text == 'Buy milk & eggs\n\nCall Ana'


def test_quality_reasons_are_named():
    cfg = CleanConfig()
    cases = {
        "": "empty",
        "ok": "too_short",
        "https://example.com/a?token=1": "url_only",
        "!!!!!!!! ???????? -------- ++++++++ a b c d": "mostly_symbols",
        "spam spam spam spam spam spam spam spam spam spam spam spam": "repetitive_words",
        "same line here\nsame line here\nsame line here\nsame line here\nother": "repeated_lines",
        "x" * 30_000: "too_long",
        "Met Ana about the Q3 roadmap; she owns the pricing page.": None,
        "明日は十時から会議。資料を準備する。": None,  # no spaces, still a real note
    }
    for text, reason in cases.items():
        assert quality_reason(normalize(text), cfg) == reason, text
    assert word_count("明日は会議") == 5


def test_clean_step_counts_and_keeps_rejects():
    df = notes_frame([
        {"note_id": "a", "text": "<div>Dentist on Friday at 9, bring the insurance card</div><div><br></div>",
         "source_format": "enex"},
        {"note_id": "b", "text": "   ", "source_format": "json"},
        {"note_id": "c", "text": "test", "source_format": "json"},
        {"note_id": "d", "text": "Reading notes: chapter 3 argues habits beat goals.", "source_format": "markdown",
         "task": "summarize", "input": "x  y", "output": " Habits   beat goals. "},
    ])
    result = clean(df, CleanConfig())
    assert result.rows_in == 4 and result.kept["note_id"].to_list() == ["a", "d"]
    assert result.dropped == {"empty": 1, "too_short": 1}
    assert result.kept.filter(pl.col("note_id") == "a")["text"][0] == "Dentist on Friday at 9, bring the insurance card"
    assert result.kept.filter(pl.col("note_id") == "d")["output"][0] == "Habits beat goals."
    assert set(result.rejects["step"]) == {"clean"}
