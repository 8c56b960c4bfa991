"""Credentials in URLs, masked before a URL is written or shown: userinfo and secret-looking query parameters.

    mask_url("http://user:pass@host/v1?api_key=abc&x=1") == "http://***@host/v1?api_key=***&x=1"

The one rule for everything assay writes or prints. The full URL stays in memory where a teacher or Argilla
is called; it is masked at the boundaries: `display.safe` (every value printed, errors included), the progress
bars, results.json and the HTML report, stage manifests, the run log and its summary, Argilla URLs shown.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# a parameter name that names a secret, alone or inside a longer name (reset_token, X-Amz-Signature, api-key);
# broad on purpose: masking a harmless value costs nothing, missing a key costs the key
SECRET_PARAM = re.compile(r"token|key|secret|password|passwd|pwd|pass|auth|sig|signature|session|sid|code|otp|"
                          r"jwt|bearer|credential|hash|invite", re.I)
MASK = "***"
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]{0,15}+://", re.I)
_URL_IN_TEXT = re.compile(r"(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,15}+://[^\s'\"<>`]++", re.I)
_PARAM = re.compile(r"([?&;#])([^=&;#?]{1,128}+)=([^&;#]*+)")


def mask_url(url: str) -> str:
    """The URL with any user:password@ replaced by ***@ and the values of secret-looking parameters by ***."""
    scheme = _SCHEME.match(url)
    if not scheme:
        return _mask_params(url)
    head, rest = url[:scheme.end()], url[scheme.end():]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:  # a password may itself hold "@": the host follows the last one
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return head + netloc + _mask_params(tail)


def _mask_params(tail: str) -> str:
    return _PARAM.sub(lambda m: f"{m[1]}{m[2]}={MASK}" if SECRET_PARAM.search(m[2]) and m[3] else m[0], tail)


def mask_urls(text: str) -> str:
    """Every URL in free text masked, e.g. in an error message that quotes a config value."""
    if "://" not in text:  # most text holds no URL: skip the regex (results carry every example's text)
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)


class MaskURLs(logging.Filter):
    """Masks URLs in log records: HTTP clients log each request's URL, query string included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_urls(str(a)) if _has_url(a) else a for a in record.args)
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = mask_urls(record.msg)
        return True


def _has_url(value: object) -> bool:
    return not isinstance(value, (int, float)) and "://" in str(value)


def mask_urls_in_logs(*logger_names: str) -> None:
    """Add MaskURLs to these loggers once (a logger's filters see only what is logged on it by name)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskURLs) for f in logger.filters):
            logger.addFilter(MaskURLs())


def mask_urls_in(value: Any) -> Any:
    """A copy of a JSON-like value (a config dump, a list of teacher specs, an eval's results) with every URL in
    it masked, in keys too: results are keyed by contestant, and a teacher contestant's key is its spec."""
    if isinstance(value, str):
        return mask_urls(value)
    if isinstance(value, dict):
        return {mask_urls(k) if isinstance(k, str) else k: mask_urls_in(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_urls_in(v) for v in value]
    return value
