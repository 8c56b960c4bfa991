"""Untrusted text (notes, teacher outputs, labels) as Argilla shows it: as text, never as markup.

Argilla 2.8's UI puts a TextField's value into the page with `v-html` when `use_markdown` is off, and into an
iframe on the UI's own origin (`srcdoc`, no sandbox) when the value looks like HTML (`<b>..</b>`); with
`use_markdown` on it renders markdown, whose images and links load from any host. A note holding `<img
onerror=...>` then runs script beside the reviewer's login token. So every field goes out with `<`, `>` and
`&` escaped and `use_markdown` off: the UI shows the characters they stand for on the `v-html` path, and the
HTML test never matches. Suggestions (a TextQuestion's `v-text`, a label's text) are set as text by the UI
and stay raw: a reviewer edits them, and `pull` reads the edit back as it was typed.
"""

from __future__ import annotations

import hashlib
import html
import re
from urllib.parse import urlsplit

# Argilla refuses any other character in a suggestion's agent (api/schemas/v1/suggestions.py, AGENT_REGEX)
_NOT_AGENT = re.compile(r"[^A-Za-z0-9_:./ -]+")
AGENT_MAX = 200


def field_text(text: str) -> str:
    """A TextField value that the UI shows as exactly `text`."""
    return html.escape(text, quote=False)


def agent_name(teacher: str) -> str:
    """A suggestion agent Argilla accepts, readable as the teacher: `openai-compatible:qwen2.5@http://u:p@host:8000/v1`
    becomes `openai-compatible:qwen2.5 at host:8000/v1` (no credentials, no query). The full spec stays in the
    record's metadata and the question titles."""
    model, sep, url = teacher.partition("@")
    if sep:
        parts = urlsplit(url)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a port that is not a number: the name still has to be made
            port = ""
        teacher = f"{model} at {parts.hostname or ''}{port}{parts.path.rstrip('/')}"
    name = re.sub(r"\s+", " ", _NOT_AGENT.sub("-", teacher)).strip(" -") or "teacher"
    if len(name) > AGENT_MAX:
        name = name[:AGENT_MAX - 9] + "-" + hashlib.sha256(teacher.encode()).hexdigest()[:8]
    return name


def agent_names(teachers: list[str]) -> dict[str, str]:
    """teacher spec -> agent; two specs that would share an agent (same model, hosts differing only in
    credentials or query) each get a short hash of the spec, so answers stay told apart."""
    names = {t: agent_name(t) for t in teachers}
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    return {t: n if taken[n] == 1 else f"{n[:AGENT_MAX - 9]}-{hashlib.sha256(t.encode()).hexdigest()[:8]}"
            for t, n in names.items()}
