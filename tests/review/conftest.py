"""One embedded Argilla per test session (started through the real CLI), datasets shaped as `assay synth`
writes them, and annotator helpers that answer through the REST API as the UI does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest

from assay.curation.synth.run import CANDIDATE_SCHEMA
from assay.records import conform
from assay.store import DatasetStore

TEACHERS = ["rule:lead", "openai:gpt-test"]
INSTRUCTION = "Summarize the following note."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    home: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def creds(self) -> dict:
        return json.loads((self.home / ".assay" / "argilla" / "credentials.json").read_text())

    @property
    def owner(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Argilla-Api-Key": self.creds["api_key"]}, timeout=60)

    def env(self) -> dict:
        return {**os.environ, "ASSAY_HOME": str(self.home), "COLUMNS": "200"}

    def start(self, timeout: float = 600) -> None:
        log = open(self.home / "serve.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "assay", "review", "serve", "--port", str(self.port)],
                                     env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        runtime = self.home / ".assay" / "argilla" / "server.json"
        deadline = time.monotonic() + timeout  # the first run creates argilla-server's virtualenv
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"assay review serve exited: {(self.home / 'serve.log').read_text()[-2000:]}")
            if runtime.exists():
                return
            time.sleep(0.5)
        raise RuntimeError("assay review serve did not come up")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C would
            self.proc.wait(60)

    def children(self) -> list:
        import psutil

        return psutil.Process(self.proc.pid).children()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("review-project")
    srv = Server(home, free_port())
    srv.start()
    yield srv
    srv.stop()


def make_version(home: Path, name: str, n: int, *, task: str = "summarize", outputs=None, config=None, texts=None,
                 teachers=TEACHERS):
    """A dataset version as `assay synth` writes it: rows with the selected output and agreement, and a
    `candidates` table with each teacher's output and score. `outputs(i)` -> (selected, other teacher's)
    replaces the garden summaries (classify needs JSON labels), `texts(i)` the notes; `config` is the synth
    config recorded; `teachers` the two teachers' specs (the first one's output is selected)."""
    rows, cands = [], []
    for i in range(n):
        note_id = f"{name}-note-{i:05d}"
        text = f"Note {i} about the garden: water the tomatoes on day {i % 7} and buy compost number {i}."
        if texts is not None:
            text = texts(i)
        lead, other = f"Water the tomatoes on day {i % 7}.", f"Garden chores for note {i}: tomatoes, compost."
        if outputs is not None:
            lead, other = outputs(i)
        agreement = round((i * 37 % 100) / 100, 2)
        rows.append({"note_id": note_id, "title": f"Garden {i}", "text": text, "category": ["home", "work"][i % 2],
                     "task": task, "instruction": INSTRUCTION, "input": f"Garden {i}\n\n{text}", "output": lead,
                     "messages": json.dumps([{"role": "user", "content": f"{INSTRUCTION}\n\nGarden {i}\n\n{text}"},
                                             {"role": "assistant", "content": lead}]),
                     "origin": "export", "teacher": teachers[0], "synthetic": i % 5 == 0, "source_format": "json",
                     "split": "train", "agreement": agreement})
        for teacher, out, score in ((teachers[0], lead, 0.9), (teachers[1], other, agreement)):
            cands.append({"note_id": note_id, "task": task, "teacher": teacher, "output": out, "ok": True,
                          "chosen": teacher == TEACHERS[0], "score": score, "raw": out})
    data = conform(pl.DataFrame(rows, infer_schema_length=None))
    table = pl.DataFrame([{k: c.get(k) for k in CANDIDATE_SCHEMA} for c in cands], schema=CANDIDATE_SCHEMA)
    return DatasetStore(home / "datasets").write(name, data, step="synth", config=config or {},
                                                 tables={"candidates": table}, task=task, teachers=list(teachers))


def annotator(server: Server, username: str) -> dict:
    """An annotator in the default workspace: id, password and API key (read as the owner: rg.User has none)."""
    password = f"pw-{username}-12345"
    with server.owner as owner:
        found = [u for u in owner.get("/api/v1/users").json()["items"] if u["username"] == username]
        if found:
            user = found[0]
        else:
            user = owner.post("/api/v1/users", json={"first_name": username, "username": username,
                                                     "password": password, "role": "annotator"}).json()
            ws = [w for w in owner.get("/api/v1/me/workspaces").json()["items"] if w["name"] == "default"][0]
            owner.post(f"/api/v1/workspaces/{ws['id']}/users", json={"user_id": user["id"]}).raise_for_status()
    return {"id": user["id"], "username": username, "password": password, "api_key": user["api_key"]}


def server_records(server: Server, dataset_name: str) -> dict[str, dict]:
    """external id -> server-side record (its `id` is what an annotator's submit needs), listed as the owner."""
    with server.owner as owner:
        dataset = [d for d in owner.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset_name][0]
        out, offset = {}, 0
        while True:
            page = owner.get(f"/api/v1/datasets/{dataset['id']}/records",
                             params={"offset": offset, "limit": 1000, "include": ["suggestions"]}).json()["items"]
            out.update({r["external_id"]: r | {"dataset_id": dataset["id"]} for r in page})
            if len(page) < 1000:
                return out
            offset += 1000


def submit(server: Server, user: dict, record: dict, values: dict, status: str = "submitted") -> None:
    """An annotator's answer through the low-level API, as the UI sends it."""
    body = {"values": {q: {"value": v} for q, v in values.items()}, "status": status}
    resp = httpx.post(f"{server.url}/api/v1/records/{record['id']}/responses", json=body,
                      headers={"X-Argilla-Api-Key": user["api_key"]}, timeout=60)
    assert resp.status_code == 201, resp.text
