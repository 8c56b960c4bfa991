"""`assay review users add NAME`: a reviewer's account on the Argilla server, with a generated password.

Several people review one dataset by each signing in with their own account: their answers are kept
apart, `--min-submitted N` asks for N answers per record, and `pull` resolves them (majority, agreement).
"""

from __future__ import annotations

import secrets
import warnings

from assay.curation.review.server import ReviewServerError
from assay.errors import AssayError, InputError

ROLES = ("annotator", "admin")  # an owner is made once, with the server (`assay review serve`)


def add_user(client, username: str, *, role: str = "annotator", workspace: str = "default") -> dict:
    """Create `username` with a new password in `workspace`; returns username, role, workspace, password."""
    import argilla as rg

    if role not in ROLES:
        raise InputError(f"--role must be one of {', '.join(ROLES)}", field="role", value=role)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = client.workspaces(workspace)
        if ws is None:
            raise ReviewServerError(f"Argilla has no workspace {workspace!r}; create it or pass --workspace")
        if client.users(username) is not None:
            raise AssayError(f"Argilla already has a user {username!r}; pick another name (their password is "
                             "not shown again: delete the user in Argilla to start over)")
        password = secrets.token_urlsafe(12)  # 16 characters; Argilla asks for 8 to 100
        user = rg.User(username=username, first_name=username, password=password, role=role, client=client).create()
        user.add_to_workspace(ws)
    return {"username": username, "role": role, "workspace": workspace, "password": password}
