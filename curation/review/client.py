"""A connected `argilla` client, with connection faults as one clear line instead of an SDK traceback."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings

from curation.review.server import ReviewServerError, connection


def connect(project=None):
    """`rg.Argilla` for ARGILLA_API_URL/ARGILLA_API_KEY, else the running embedded server; checks the key."""
    import httpx

    import argilla as rg
    from argilla._exceptions import ArgillaAPIError
    from argilla._exceptions._client import ArgillaCredentialsError

    url, key = connection(project)
    logging.getLogger("argilla").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rg.Argilla(api_url=url, api_key=key, timeout=120)
    except ArgillaCredentialsError:
        raise ReviewServerError(f"Argilla at {url} refused the API key (401); check ARGILLA_API_KEY") from None
    except httpx.HTTPError as exc:
        raise ReviewServerError(f"cannot reach Argilla at {url} ({type(exc).__name__}: {exc}); "
                                "is it running? (`assay review serve`, or check ARGILLA_API_URL)") from None
    except ArgillaAPIError as exc:
        raise ReviewServerError(f"Argilla at {url} answered an error: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # not JSON, or JSON not of Argilla's shape (pydantic's errors are ValueErrors)
        raise ReviewServerError(not_argilla(url, exc)) from None


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

    url = str(client.api_url).rstrip("/")
    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise ReviewServerError(f"Argilla at {url} answered {exc.response.status_code} for "
                                f"{exc.request.method} {exc.request.url.path}") from None
    except httpx.HTTPError as exc:
        raise ReviewServerError(f"lost the connection to Argilla at {url} ({type(exc).__name__}: {exc}); "
                                "run the command again once it is back: it resumes where it stopped") from None
    except ArgillaAPIError as exc:
        raise ReviewServerError(f"Argilla at {url} answered an error: {str(exc).splitlines()[0]}") from None
    except json.JSONDecodeError as exc:
        raise ReviewServerError(not_argilla(url, exc)) from None
