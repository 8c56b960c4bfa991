"""SDK faults -> named reasons: which are worth another attempt, how long the provider asked us to wait.

Both runners and the teachers read these names; `FATAL` ones stop a run (no retry can fix a bad key).
"""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from typing import Any

FATAL = {"auth_failed", "permission_denied", "model_not_found", "payment_required"}
# faults that are the teacher's own answer (it refused, it ran out of tokens): scored as its output. Every
# other fault means no answer came back, and an eval counts that example as missing for it, never as wrong.
ANSWERED = {"refusal", "max_tokens"}


def classify(exc: BaseException) -> tuple[str, bool, float | None]:
    """(reason, retryable, retry_after seconds) for an SDK exception, whichever SDK raised it."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(status, int) and response is not None:
        return status_reason(status, getattr(exc, "type", None) or _error_type(exc)), _retryable_status(status), \
            retry_after_seconds(response.headers)
    name = type(exc).__name__
    if name == "APITimeoutError" or isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", True, None
    if name == "APIConnectionError":
        cause = type(exc.__cause__).__name__ if exc.__cause__ else ""
        return ("connection_refused" if cause == "ConnectError" else "connection_reset"), True, None
    if isinstance(exc, ValueError) or name == "APIResponseValidationError":  # JSONDecodeError is a ValueError
        return "malformed_body", True, None
    return f"client_error:{name}", False, None


def _error_type(exc: BaseException) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("type") or inner.get("code")
    return None


def status_reason(status: int, error_type: str | None = None) -> str:
    if status == 429:
        return "rate_limited"
    if status == 529 or error_type == "overloaded_error":
        return "overloaded"
    if status >= 500:
        return f"server_error:{status}"
    return {400: "bad_request", 401: "auth_failed", 402: "payment_required", 403: "permission_denied",
            404: "model_not_found", 408: "timeout", 409: "conflict", 413: "request_too_large"}.get(
        status, f"http_{status}")


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when absent or unreadable."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
