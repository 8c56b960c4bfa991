"""Reply clean-up shared by the task parsers and the eval judge: code fences, preambles, quotes, JSON, sentences."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```\s*$", re.S)
_PREAMBLE = re.compile(r"^(?:sure[,!.]?\s*)?(?:here(?:'s| is| are)\b[^\n:]*:|summary:|answer:|note:|output:)\s*", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def strip_reply(text: str | None) -> str:
    text = (text or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    text = _PREAMBLE.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def find_json(text: str, opener: str) -> Any:
    """The first JSON value starting with `opener` ("{" or "[") that decodes; raises ValueError."""
    text = strip_reply(text)
    decoder = json.JSONDecoder()
    for match in re.finditer(re.escape(opener), text):
        try:
            value, _ = decoder.raw_decode(text[match.start():])
            return value
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON found")


_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|St|Sr|Jr|Mt|No|vs|etc|e\.g|i\.e|approx|Inc|Ltd|Co)"
                           r"|\b[A-Z])\.$")


def sentences(text: str) -> list[str]:
    parts: list[str] = []
    for piece in _SENTENCE.split(" ".join(text.split())):
        # "Dr. Okafor" and "J. Smith" do not end a sentence
        if parts and _ABBREVIATION.search(parts[-1]):
            parts[-1] += " " + piece
        elif piece.strip():
            parts.append(piece.strip())
    return parts
