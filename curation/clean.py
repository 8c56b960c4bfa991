"""Clean: normalize text, strip HTML where the note came as HTML, and drop low-quality notes with a named reason."""

from __future__ import annotations

import html
import re
import unicodedata

import polars as pl

from curation.config import CleanConfig
from curation.steps import StepResult, split_by_reason

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_HTML_TAG = re.compile(r"<\s*/?\s*(div|p|br|span|en-note|en-todo|en-media|ul|ol|li|b|i|u|a|strong|em|h[1-6]|table|tr|td|font|hr|img)\b[^>]*>", re.I)
_BLOCK_TAG = re.compile(r"<\s*(/\s*(div|p|li|h[1-6]|tr)|br\s*/?|hr\s*/?)\s*>", re.I)
_ANY_TAG = re.compile(r"<[^>]{1,500}>")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_URL = re.compile(r"https?://\S+")


def strip_html(text: str) -> str:
    """Turn HTML/ENML into plain text: block tags become newlines, entities are unescaped."""
    text = _HTML_COMMENT.sub("", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _ANY_TAG.sub("", text)
    return html.unescape(text)


def looks_like_html(text: str) -> bool:
    return len(_HTML_TAG.findall(text[:20_000])) >= 2


def normalize(text: str | None, form: str = "NFKC") -> str | None:
    if text is None:
        return None
    text = unicodedata.normalize(form, text.replace("\r\n", "\n").replace("\r", "\n")).translate(_ZERO_WIDTH)
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
