"""A connected `argilla` client, with connection faults as one clear line instead of an SDK traceback.

ARGILLA_API_URL may carry credentials (https://user:pass@host, ?token=): the client gets the URL as given,
and every message and result shows `shown_url(...)`, the URL masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings

from assay.curation.review.server import ReviewServerError, connection
from assay.redact import mask_url, mask_urls


def shown_url(client_or_url) -> str:
    """The Argilla URL as shown and written: no trailing slash, credentials masked."""
    return mask_url(str(getattr(client_or_url, "api_url", client_or_url)).rstrip("/"))


def connect(project=None):
    """`rg.Argilla` for ARGILLA_API_URL/ARGILLA_API_KEY, else the running embedded server; checks the key."""
    import argilla as rg
    import httpx
    from argilla._exceptions import ArgillaAPIError
    from argilla._exceptions._client import ArgillaCredentialsError

    url, key = connection(project)
    shown = shown_url(url)
    logging.getLogger("argilla").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rg.Argilla(api_url=url, api_key=key, timeout=120)
    except ArgillaCredentialsError:
        raise ReviewServerError(f"Argilla at {shown} refused the API key (401); check ARGILLA_API_KEY") from None
    except httpx.HTTPError as exc:  # the client's own message may quote the URL
        raise ReviewServerError(f"cannot reach Argilla at {shown} ({type(exc).__name__}: {mask_urls(str(exc))}); "
                                "is it running? (`assay review serve`, or check ARGILLA_API_URL)") from None
    except ArgillaAPIError as exc:
        raise ReviewServerError(f"Argilla at {shown} answered an error: {mask_urls(api_error_line(exc))}") from None
    except ValueError as exc:  # not JSON, or JSON not of Argilla's shape (pydantic's errors are ValueErrors)
        raise ReviewServerError(not_argilla(shown, exc)) from None


def not_argilla(url: str, exc: ValueError) -> str:
    """A server that answers, but not as Argilla's API: a login page, a proxy, the UI's address with a path."""
    what = "a page that is not JSON" if isinstance(exc, json.JSONDecodeError) else "JSON that is not Argilla's"
    return (f"{url} answered {what}; is it an Argilla server's address (e.g. http://localhost:6900, without a "
            "path)? check ARGILLA_API_URL or --argilla-url")


def find_dataset(client, name: str, workspace: str | None = None):
    """The Argilla dataset `name` in `workspace` (default: the client's default), or None; no SDK warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = client.workspaces(workspace) if workspace else client.workspaces.default
        if ws is None:
            raise ReviewServerError(f"Argilla has no workspace {workspace!r}; create it or pass --workspace")
        return client.datasets(name, workspace=ws)


@contextlib.contextmanager
def one_line_errors(client):
    """A connection lost or an API error in the middle of a command becomes one ReviewServerError line."""
    import httpx
    from argilla._exceptions import ArgillaAPIError

    url = shown_url(client)
    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise ReviewServerError(f"Argilla at {url} answered {exc.response.status_code} for "
                                f"{exc.request.method} {exc.request.url.path}") from None
    except httpx.HTTPError as exc:
        raise ReviewServerError(f"lost the connection to Argilla at {url} ({type(exc).__name__}: "
                                f"{mask_urls(str(exc))}); run the command again once it is back: it resumes "
                                "where it stopped") from None
    except ArgillaAPIError as exc:
        raise ReviewServerError(f"Argilla at {url} answered an error: {mask_urls(api_error_line(exc))}") from None
    except json.JSONDecodeError as exc:
        raise ReviewServerError(not_argilla(url, exc)) from None


ERROR_MAX = 300


def api_error_line(exc: Exception) -> str:
    """An SDK API error as a line a person reads: its kind and the server's first reason. The SDK appends the
    server's whole answer, which for a refused bulk request names every record: kilobytes on one line."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0].removeprefix("Argilla SDK error: ")
    _, sep, details = text.partition(". Details: ")
    if sep:
        text = f"{type(exc).__name__} ({getattr(exc, 'status_code', '?')}): {_reason(details)}"
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX - 3] + "..."


def _reason(details: str) -> str:
    """The first reason in the server's JSON answer: a validation error list (FastAPI's `detail`, or Argilla's
    `detail.params.errors`), Argilla's `detail.params.message`, or a plain `detail`; else the answer itself."""
    try:
        detail = json.loads(details).get("detail")
    except (ValueError, AttributeError):
        return details
    params = detail.get("params") or {} if isinstance(detail, dict) else {}
    errors = detail if isinstance(detail, list) else params.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        where = ".".join(str(x) for x in first.get("loc") or [] if x != "body")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where + ': ' if where else ''}{first.get('msg')}{more}"
    if params.get("message"):
        return str(params["message"])
    return str(detail) if detail is not None else details
