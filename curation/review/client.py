"""A connected `argilla` client, with connection faults as one clear line instead of an SDK traceback.

ARGILLA_API_URL may carry credentials (https://user:pass@host, ?token=): the client gets the URL as given,
and every message and result shows `shown_url(...)`, the URL masked.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

from assay.redact import mask_url, mask_urls
from curation.review.server import ReviewServerError, connection


def shown_url(client_or_url) -> str:
    """The Argilla URL as shown and written: no trailing slash, credentials masked."""
    return mask_url(str(getattr(client_or_url, "api_url", client_or_url)).rstrip("/"))


def connect(project=None):
    """`rg.Argilla` for ARGILLA_API_URL/ARGILLA_API_KEY, else the running embedded server; checks the key."""
    import httpx

    import argilla as rg
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
        raise ReviewServerError(f"Argilla at {shown} answered an error: "
                                f"{mask_urls(str(exc).splitlines()[0])}") from None


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
        raise ReviewServerError(f"Argilla at {url} answered an error: {mask_urls(str(exc).splitlines()[0])}") from None
