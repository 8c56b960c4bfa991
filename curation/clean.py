"""Clean: normalize text, strip HTML where the note came as HTML, and drop low-quality notes with a named reason."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import polars as pl

from assay.curation.config import CleanConfig
from assay.curation.steps import StepResult, split_by_reason

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# control characters (C0, DEL, C1) other than tab and newline: an ESC sequence in a note can clear or rewrite
# a terminal and means nothing to a model; \v and \f are spacing, so they become spaces
_CONTROL = dict.fromkeys([*range(0x00, 0x09), *range(0x0e, 0x20), *range(0x7f, 0xa0)], None) | {0x0b: " ", 0x0c: " "}
_HTML_TAG = re.compile(r"<\s*/?\s*(div|p|br|span|en-note|en-todo|en-media|ul|ol|li|b|i|u|a|strong|em|h[1-6]|table|tr|td"
                       r"|font|hr|img)\b[^>]*>", re.I)
# a block ends a line where it closes; a line break or rule is one where it stands
_BLOCK = {"div", "p", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre"}
_BREAK = {"br", "hr"}
_DROPPED = {"script", "style", "head", "title", "template", "noscript"}  # content that is never note text
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_URL = re.compile(r"https?://\S+")


def strip_html(text: str) -> str:
    """Turn HTML/ENML into the text a reader sees: block elements become line breaks, script and style
    content is dropped, and escaped text such as "&lt;script&gt;" stays the characters it shows."""
    parser = _TextOf()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


class _TextOf(HTMLParser):
    """Collects text nodes. A parser, not patterns: entities are decoded once, in text only, so escaped
    markup never becomes a tag, and attributes or comments never leak into the text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.dropping = 0  # depth inside <script>/<style>/...

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _DROPPED:
            self.dropping += 1
        elif tag in _BREAK and not self.dropping:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in _BREAK and not self.dropping:  # <br/>
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropping = max(0, self.dropping - 1)
        elif tag in _BLOCK and not self.dropping:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.parts.append(data)

    def unknown_decl(self, data: str) -> None:
        if data.startswith("CDATA["):  # XHTML (ENML) may wrap text in CDATA
            self.handle_data(data[len("CDATA["):])


def looks_like_html(text: str) -> bool:
    return len(_HTML_TAG.findall(text[:20_000])) >= 2


def normalize(text: str | None, form: str = "NFKC") -> str | None:
    if text is None:
        return None
    text = unicodedata.normalize(form, text.replace("\r\n", "\n").replace("\r", "\n")).translate(_ZERO_WIDTH)
    text = text.translate(_CONTROL)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def word_count(text: str) -> int:
    # CJK scripts write without spaces, so each of their characters counts as a word
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + cjk


def quality_reason(text: str, cfg: CleanConfig) -> str | None:
    """The first quality rule a text breaks, or None. Rules are script-agnostic (no word lists)."""
    if not text:
        return "empty"
    if len(text) > cfg.max_chars:
        return "too_long"
    without_urls = _URL.sub(" ", text).strip()
    if not _WORD.search(without_urls):
        return "url_only" if _URL.search(text) else "no_words"
    if len(text) < cfg.min_chars:
        return "too_short"
    if word_count(text) < cfg.min_words:
        return "too_few_words"
    symbols = sum(1 for ch in text if not (ch.isalnum() or ch.isspace()))
    if symbols / len(text) > cfg.max_symbol_ratio:
        return "mostly_symbols"
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) >= 4 and 1 - len(set(lines)) / len(lines) > cfg.max_repeated_line_ratio:
        return "repeated_lines"
    words = [w.casefold() for w in _WORD.findall(text)]
    if len(words) >= 10 and len(set(words)) / len(words) < cfg.min_unique_word_ratio:
        return "repetitive_words"
    return None


def clean(df: pl.DataFrame, cfg: CleanConfig) -> StepResult:
    texts, inputs, outputs, reasons = [], [], [], []
    for text, fmt, inp, out in zip(df["text"], df["source_format"], df["input"], df["output"]):
        raw = text or ""
        if cfg.strip_html and (fmt == "enex" or looks_like_html(raw)):
            raw = strip_html(raw)
        cleaned = normalize(raw, cfg.unicode_form)
        texts.append(cleaned)
        inputs.append(normalize(inp, cfg.unicode_form))
        outputs.append(normalize(out, cfg.unicode_form))
        reasons.append(quality_reason(cleaned, cfg))
    cleaned_df = df.with_columns(
        pl.Series("text", texts, dtype=pl.String),
        pl.Series("input", inputs, dtype=pl.String),
        pl.Series("output", outputs, dtype=pl.String),
    )
    return split_by_reason(cleaned_df, reasons, "clean")
