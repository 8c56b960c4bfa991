"""Entry point run by argilla-server's own Python: registers our SQLite search engine, then serves,
works the job queue, or prepares the database. The stock `python -m argilla_server start` cannot load
a plugin, and the server's files stay untouched, so this script is how the engine gets in.

    python launcher.py migrate            # database migrations + the owner user from $ASSAY_ARGILLA_OWNER_*
    python launcher.py serve HOST PORT    # the HTTP server (API and UI)
    python launcher.py worker             # the rq worker, for the server's background jobs

Settings come from ARGILLA_* variables set by curation/review/server.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_engine  # noqa: E402,F401  (registers the engine under its name before the app starts)


def _sqlite_wal() -> None:
    """argilla-server's SQLite in WAL mode: readers stop blocking the writer, and a commit is one append
    to the log (it keeps synchronous=FULL, so an answer is on disk once the server says so)."""
    from argilla_server.settings import settings
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, connection_record):
        if settings.database_is_sqlite:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()


def migrate() -> None:
    from argilla_server.cli.database.migrate import migrate_db

    migrate_db("head")
    asyncio.run(_ensure_owner(os.environ["ASSAY_ARGILLA_OWNER_USERNAME"], os.environ["ASSAY_ARGILLA_OWNER_PASSWORD"],
                              os.environ["ASSAY_ARGILLA_OWNER_API_KEY"]))


async def _ensure_owner(username: str, password: str, api_key: str) -> None:
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.enums import UserRole
    from argilla_server.models import User, Workspace

    async with AsyncSessionLocal() as session:
        if await accounts.get_user_by_username(session, username):
            return
        workspace = await Workspace.get_by(session, name="default")
        if workspace is None:
            workspace = await accounts.create_workspace(session, {"name": "default"})
        await User.create(session, first_name=username, username=username, role=UserRole.owner,
                          password_hash=accounts.hash_password(password), api_key=api_key, workspaces=[workspace])


# the UI's stylesheet imports its fonts (Inter, Roboto Condensed) from fonts.googleapis.com
_REMOTE_IMPORT = re.compile(r"@import\s+url\(\s*[\"']?https?://[^)]*\)\s*;?")


def _no_remote_fonts(app) -> int:
    """Drop the stylesheet's font imports from another host, in the copy of the UI's files the server makes
    at start (a temp folder; the installed files stay untouched): each page load would tell Google who
    reviews and when, and offline it waits on a host it cannot reach. The UI falls back to the system's
    sans-serif. Returns the number of stylesheets changed."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    changed, routes = 0, list(app.routes)
    while routes:
        route = routes.pop()
        inner = getattr(route, "app", None)
        if isinstance(route, Mount) and hasattr(inner, "routes"):
            routes += list(inner.routes)  # the UI under a base URL is a mounted app
        if isinstance(inner, StaticFiles) and inner.directory:
            for css in Path(inner.directory).rglob("*.css"):
                text = css.read_text(encoding="utf-8")
                local = _REMOTE_IMPORT.sub("", text)
                if local != text:
                    css.write_text(local, encoding="utf-8")
                    changed += 1
    return changed


def serve(host: str, port: int) -> None:
    import uvicorn
    from argilla_server import app

    _no_remote_fonts(app)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


def worker() -> None:
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=REDIS_CONNECTION).work(with_scheduler=False)


if __name__ == "__main__":
    _sqlite_wal()
    command = sys.argv[1]
    if command == "migrate":
        migrate()
    elif command == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif command == "worker":
        worker()
    else:
        raise SystemExit(f"unknown command {command!r}: migrate, serve or worker")
