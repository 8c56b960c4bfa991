"""Push -> annotate -> pull against the embedded Argilla, and the faults around it."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import polars as pl
import psutil
from conftest import INSTRUCTION, TEACHERS, Server, annotator, free_port, make_version, server_records, submit

from assay.curation.review.push import record_id
from assay.store import DatasetStore


def run(server, *args, check=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "assay", "review", *args], env={**server.env(), **(env or {})},
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"assay review {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_push_annotate_pull(server):
    version = make_version(server.home, "garden", 12)
    out = run(server, "push", "garden", "--min-submitted", "2")
    assert "pushed 12 new record(s)" in out.stdout
    records = server_records(server, "garden-v1-summarize")
    assert len(records) == 12
    # each teacher's candidate is a suggestion with its agent and score, beside the selected output
    first = records[record_id("summarize", "garden-note-00001")]
    by_question = {s["question_id"]: s for s in first["suggestions"]}
    assert len(by_question) == 1 + len(TEACHERS)
    assert {s["agent"] for s in first["suggestions"]} == set(TEACHERS)
    assert {s["value"] for s in first["suggestions"]} == {"Water the tomatoes on day 1.",
                                                        "Garden chores for note 1: tomatoes, compost."}
    # pushing again adds nothing
    assert "pushed 0 new record(s)" in run(server, "push", "garden").stdout
    assert len(server_records(server, "garden-v1-summarize")) == 12

    ann, bob = annotator(server, "ann"), annotator(server, "bob")
    fixed = "Water the tomatoes on day 1 and buy compost 1."
    one, two = (records[record_id("summarize", "garden-note-00001")],
                records[record_id("summarize", "garden-note-00002")])
    submit(server, ann, one, {"output": fixed, "quality": 2})
    submit(server, bob, one, {"output": fixed, "quality": 3})
    submit(server, ann, two, {"output": "Water the tomatoes on day 2.", "quality": 5})
    submit(server, bob, two, {"output": "Tomatoes, day 2.", "quality": 1})
    submit(server, bob, records[record_id("summarize", "garden-note-00003")], {}, status="discarded")

    out = run(server, "pull", "garden")
    assert "wrote garden@v2: 3 reviewed row(s) (2 corrected, 1 rejected)" in out.stdout, out.stdout
    store = DatasetStore(server.home / "datasets")
    reviewed = store.get("garden@v2")
    rows = {r["note_id"]: r for r in reviewed.data().iter_rows(named=True)}
    assert rows["garden-note-00001"]["output"] == fixed
    assert rows["garden-note-00001"]["decision"] == "corrected"
    assert rows["garden-note-00001"]["reviewers"] == ["ann", "bob"]
    assert json.loads(rows["garden-note-00001"]["messages"])[-1]["content"] == fixed
    # a 1-1 tie between keeping and changing goes to the correction
    assert rows["garden-note-00002"]["decision"] == "corrected"
    assert rows["garden-note-00002"]["output"] == "Tomatoes, day 2."
    assert rows["garden-note-00003"]["decision"] == "rejected"  # a discard says: do not train on this note
    assert rows["garden-note-00003"]["reviewers"] == ["bob"]
    assert rows["garden-note-00004"]["output"] == "Water the tomatoes on day 4."
    assert reviewed.data().height == version.data().height
    review = reviewed.manifest["review"]
    assert review["pushed"] == "garden@v1" and review["decisions"] == {"corrected": 2, "rejected": 1}
    assert review["annotators"] == {"ann": {"accepted": 1, "corrected": 1, "submitted": 2},
                                    "bob": {"corrected": 2, "discarded": 1, "submitted": 2}}
    assert review["agreement"]["output"]["items"] == 2
    # units [[F, F], [A, B]]: observed disagreement 2/4, expected 10/12 -> alpha = 1 - 0.5 / (10 / 12) = 0.4
    assert review["agreement"]["output"]["value"] == 0.4
    answers = reviewed.table("answers")
    assert answers.filter(pl.col("user") == "bob").height == 5  # 2 x (output, quality) and the discard
    assert reviewed.table("candidates") is not None

    # pull twice: nothing new, no new version, the same content
    again = run(server, "pull", "garden")
    assert "already in garden@v2" in again.stdout
    assert [v.ref for v in store.versions("garden")] == ["garden@v1", "garden@v2"]

    ignoring = run(server, "pull", "garden", "--ignore-discarded")  # the old behaviour: a discard changes nothing
    assert "wrote garden@v3: 2 reviewed row(s) (2 corrected)" in ignoring.stdout
    assert store.get("garden@v3").data().filter(pl.col("note_id") == "garden-note-00003")["decision"].item() is None

    status = run(server, "status", "garden@v2")
    assert "garden-v1-summarize: 2/12 record(s) completed (min_submitted=2)" in status.stdout
    assert "ann" in status.stdout and "bob" in status.stdout


def test_reviewed_output_reaches_training(server):
    """The training loader reads a reviewed row's corrected answer, and skips a rejected one."""
    from assay.training.data import to_examples
    from assay.training.runs import review_coverage, review_line

    make_version(server.home, "train-src", 3)
    run(server, "push", "train-src")
    ann = annotator(server, "ann")
    records = server_records(server, "train-src-v1-summarize")
    submit(server, ann, records[record_id("summarize", "train-src-note-00000")], {"output": "Compost on day 0."})
    submit(server, ann, records[record_id("summarize", "train-src-note-00001")], {}, status="discarded")
    run(server, "pull", "train-src")
    reviewed = DatasetStore(server.home / "datasets").get("train-src")
    examples, dropped = to_examples(reviewed.data())
    answers = {e.note_id: e.completion for e in examples}
    assert answers["train-src-note-00000"] == "Compost on day 0."
    assert "train-src-note-00001" not in answers and dropped["rejected_in_review"] == 1
    assert answers["train-src-note-00002"] == "Water the tomatoes on day 2."
    assert examples[0].prompt[-1]["content"].startswith(INSTRUCTION)
    # the model card of a model trained on this version names the review coverage
    assert review_line(review_coverage(reviewed.manifest)) == (
        "2 of 3 summarize rows answered in Argilla (corrected 1, rejected 1) by 1 annotator(s) in "
        "'train-src-v1-summarize'; agreement (Krippendorff's alpha): output n/a, quality n/a")
    assert review_line(review_coverage(DatasetStore(server.home / "datasets").get("train-src@v1").manifest)) \
        .startswith("none")


def test_server_killed_mid_push_then_push_again(server):
    n = 2500  # five bulk requests of 500
    make_version(server.home, "crash", n)
    session = httpx.post(f"{server.url}/api/v1/token",  # a UI login from before the crash
                         data={"username": "owner", "password": server.creds["password"]}).json()["access_token"]
    push = subprocess.Popen([sys.executable, "-m", "assay", "review", "push", "crash"], env=server.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    api = [c for c in server.children() if "serve" in " ".join(c.cmdline())][0]
    deadline = time.monotonic() + 120
    with server.owner as owner:
        while time.monotonic() < deadline:
            found = [d for d in owner.get("/api/v1/me/datasets").json()["items"] if d["name"] == "crash-v1-summarize"]
            if found and owner.get(f"/api/v1/datasets/{found[0]['id']}/records", params={"limit": 1}).json()["total"]:
                break
            time.sleep(0.05)
    api.send_signal(signal.SIGKILL)  # the server dies between two bulk requests of the push, or inside one
    _, err = push.communicate(timeout=120)
    assert push.returncode != 0
    assert len([ln for ln in err.strip().splitlines() if "error" in ln.lower()]) == 1, err
    server.proc.wait(60)  # the supervisor stops the rest when one child dies
    server.start()
    out = run(server, "push", "crash")
    assert "pushed" in out.stdout
    records = server_records(server, "crash-v1-summarize")
    assert len(records) == n
    assert set(records) == {record_id("summarize", f"crash-note-{i:05d}") for i in range(n)}
    with server.owner as owner:  # and the search index holds each one once
        dataset_id = next(iter(records.values()))["dataset_id"]
        found = owner.post(f"/api/v1/me/datasets/{dataset_id}/records/search", params={"limit": 1}, json={}).json()
        assert found["total"] == n
    # the restarted server kept its auth secret: the login from before still works, nobody was logged out
    me = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {session}"}, timeout=30)
    assert me.status_code == 200 and me.json()["username"] == "owner"
    forged = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {session[:-4]}AAAA"}, timeout=30)
    assert forged.status_code == 401  # and it does check the signature


def test_wrong_key_and_unreachable_url_are_one_line(server):
    bad = run(server, "status", "garden", check=False, env={"ARGILLA_API_URL": server.url, "ARGILLA_API_KEY": "nope"})
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "refused the API key" in bad.stderr
    gone = run(server, "push", "garden", check=False,
               env={"ARGILLA_API_URL": "http://127.0.0.1:9", "ARGILLA_API_KEY": "x"})
    assert gone.returncode != 0
    assert gone.stderr.strip().count("\n") == 0 and "cannot reach Argilla" in gone.stderr


def test_stock_login_refused_and_owner_secret(server):
    stock = httpx.post(f"{server.url}/api/v1/token", data={"username": "argilla", "password": "1234"})
    assert stock.status_code == 401
    owner = httpx.post(f"{server.url}/api/v1/token", data={"username": "owner", "password": server.creds["password"]})
    assert owner.status_code == 201 and owner.json()["access_token"]
    assert server.creds["password"] != "1234" and len(server.creds["api_key"]) > 30
    assert oct((server.home / ".assay" / "argilla" / "credentials.json").stat().st_mode & 0o777) == "0o600"


def test_server_files_are_the_users_only(server):
    """The database holds every note pushed and every answer: no other account on the machine reads it."""
    root = server.home / ".assay" / "argilla"
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    assert (root / "argilla.db").exists() and (root / "search.db").exists()
    readable = {str(p.relative_to(root)): oct(p.stat().st_mode & 0o777) for p in root.rglob("*")
                if p.stat().st_mode & 0o077}
    assert readable == {}


def test_listens_only_on_loopback(server):
    listening = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == server.port]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family.name == "AF_INET" and not a.address.startswith("127.")]
    for address in others:
        try:
            httpx.get(f"http://{address}:{server.port}/api/v1/status", timeout=2)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"the server answered on {address}")


def test_taken_port_and_missing_redis_are_one_line(server, tmp_path):
    env = {**server.env(), "ASSAY_HOME": str(tmp_path)}
    taken = subprocess.run([sys.executable, "-m", "assay", "review", "serve", "--port", str(server.port)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert taken.returncode != 0 and f"port {server.port} on 127.0.0.1 is taken" in taken.stderr
    assert taken.stderr.strip().count("\n") == 0
    no_redis = {**env, "PATH": os.path.dirname(sys.executable)}  # no /usr/bin: no redis-server
    missing = subprocess.run([sys.executable, "-m", "assay", "review", "serve", "--port", "1"], env=no_redis,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "redis-server is not installed" in missing.stderr


def test_possible_duplicates_pushed_as_same_note_question(server):
    from assay.curation.dedupe import POSSIBLE_SCHEMA
    from assay.curation.review.duplicates import pair_id

    version = make_version(server.home, "dups", 4)
    pairs = pl.DataFrame([{"note_id_a": "dups-note-00000", "note_id_b": "dups-note-00001", "cosine": 0.91,
                           "word_overlap": 0.4, "text_a": "Water the tomatoes.", "text_b": "Tomatoes need water."}],
                         schema=POSSIBLE_SCHEMA)
    DatasetStore(server.home / "datasets").write("dups", version.data(), step="curate", config={},
                                                 tables={"possible_duplicates": pairs})
    for expected in ("pushed 1 new record(s)", "pushed 0 new record(s)"):  # the second push adds nothing
        assert expected in run(server, "push", "dups@v2", "--only", "duplicates").stdout
    records = server_records(server, "dups-v2-duplicates")
    assert list(records) == [pair_id("dups-note-00000", "dups-note-00001")]
    record = next(iter(records.values()))
    assert record["fields"] == {"note_a": "Water the tomatoes.", "note_b": "Tomatoes need water."}
    with server.owner as owner:
        questions = owner.get(f"/api/v1/datasets/{record['dataset_id']}/questions").json()["items"]
    same = [q for q in questions if q["name"] == "same_note"][0]
    assert {o["value"] for o in same["settings"]["options"]} == {"keep_both", "keep_a", "keep_b"}


def test_pipeline_review_stage_waits_for_every_answer_then_pulls(server):
    """review.mode=wait pushes, stops with where it stands when no one answered in time, and once every
    record is answered the same stage pulls the answers into the version training reads."""
    import pytest

    from assay.errors import AssayError
    from assay.project import Project
    from assay.runner import ReviewSection, run_stage
    from assay.stage import Context

    make_version(server.home, "waiting", 2)
    ctx = Context(Project(server.home))
    section = ReviewSection(mode="wait", wait_minutes=0.01, poll_seconds=0.2)
    with pytest.raises(AssayError, match=r"0/2 record\(s\) of 'waiting-v1-summarize' completed"):
        run_stage("review", section, ["dataset:waiting@v1"], ctx)

    ann = annotator(server, "ann")
    records = server_records(server, "waiting-v1-summarize")
    submit(server, ann, records[record_id("summarize", "waiting-note-00000")], {"output": "Water on day 0."})
    submit(server, ann, records[record_id("summarize", "waiting-note-00001")],
           {"output": "Water the tomatoes on day 1."})  # accepted as suggested
    row = run_stage("review", section, ["dataset:waiting@v1"], ctx)
    assert (row.status, row.manifest.output, row.manifest.rows_in, row.manifest.rows_out) == (
        "ran", "dataset:waiting@v2", 2, 2)
    assert "0 record(s) pushed" in row.manifest.notes[0]  # the second run sent nothing again
    data = DatasetStore(server.home / "datasets").get("waiting@v2").data()
    assert dict(zip(data["note_id"], data["output"]))["waiting-note-00000"] == "Water on day 0."


def test_only_pushes_the_rows_asked_for_and_pull_applies_the_text_rule(server):
    make_version(server.home, "only", 20)  # every 5th row synthetic; agreement (i * 37 % 100) / 100
    run(server, "push", "only", "--only", "synthetic", "--min-submitted", "2")
    ids = {i: record_id("summarize", f"only-note-{i:05d}") for i in range(20)}
    assert set(server_records(server, "only-v1-summarize")) == {ids[i] for i in (0, 5, 10, 15)}
    run(server, "push", "only", "--only", "low-agreement", "--low-agreement", "0.3")
    low = {i for i in range(20) if (i * 37 % 100) / 100 < 0.3}
    assert low and set(server_records(server, "only-v1-summarize")) == {ids[i] for i in {0, 5, 10, 15} | low}

    records = server_records(server, "only-v1-summarize")
    first, second = annotator(server, "only-a"), annotator(server, "only-b")
    submit(server, first, records[ids[5]], {"output": "Water on day 5."})
    submit(server, second, records[ids[5]], {"output": "Water the tomatoes on day 5 and buy compost 5."})
    run(server, "pull", "only", "--text-rule", "longest")
    row = DatasetStore(server.home / "datasets").get("only").data().filter(pl.col("note_id") == "only-note-00005")
    assert row["output"][0] == "Water the tomatoes on day 5 and buy compost 5."
    assert row["reviewers"].to_list()[0] == ["only-a", "only-b"] and row["decision"][0] == "corrected"


def test_classify_push_asks_label_questions_and_pull_takes_the_majority(server):
    def labels(i):
        return (json.dumps({"category": ["home", "work"][i % 2], "importance": "low", "context": "personal"}),
                json.dumps({"category": "errand", "importance": "high", "context": "personal"}))

    make_version(server.home, "sort", 4, task="classify", outputs=labels)
    run(server, "push", "sort", "--task", "classify", "--min-submitted", "3")
    with server.owner as owner:
        dataset = [d for d in owner.get("/api/v1/me/datasets").json()["items"] if d["name"] == "sort-v1-classify"][0]
        questions = {q["name"]: q for q in owner.get(f"/api/v1/datasets/{dataset['id']}/questions").json()["items"]}
    # one label question per key: the label sets (defaults here: no synth config) and the export's categories,
    # plus every value a teacher gave ("errand"); Argilla refuses a label question with a single option
    options = {k: sorted(o["value"] for o in questions[k]["settings"]["options"])
               for k in ("category", "importance", "context")}
    assert options == {"category": ["errand", "home", "work"], "importance": ["high", "low", "medium"],
                       "context": ["personal", "work"]}
    records = server_records(server, "sort-v1-classify")
    one = records[record_id("classify", "sort-note-00001")]
    given = {s["value"] for s in one["suggestions"]}
    assert {"work", "low", "personal"} <= given and labels(1)[1] in given  # the selected labels + the other teacher's
    assert one["metadata"]["note_category"] == "work"  # the export's category, beside the `category` question

    users = [annotator(server, f"sorter-{k}") for k in range(3)]
    for user, category in zip(users, ["errand", "errand", "work"]):
        submit(server, user, one, {"category": category, "importance": "low", "context": "personal"})
    run(server, "pull", "sort", "--task", "classify")
    assert "sort-v1-classify: 1/4 record(s) completed" in run(server, "status", "sort@v1", "--task", "classify").stdout
    reviewed = DatasetStore(server.home / "datasets").get("sort")
    row = reviewed.data().filter(pl.col("note_id") == "sort-note-00001").row(0, named=True)
    assert json.loads(row["output"]) == {"category": "errand", "importance": "low", "context": "personal"}  # 2 of 3
    assert row["decision"] == "corrected" and row["reviewers"] == ["sorter-0", "sorter-1", "sorter-2"]
    agreement = reviewed.manifest["review"]["agreement"]
    assert agreement["importance"]["items"] == 1 and agreement["category"]["items"] == 1

    # a version whose synth run named its label sets: those are the options (+ what the teachers said)
    named = {"categories": ["home", "travel", "work"], "importance": ["low", "urgent"], "context": ["personal", "work"]}
    make_version(server.home, "named", 2, task="classify", outputs=labels, config={"labels": named})
    run(server, "push", "named", "--task", "classify")
    with server.owner as owner:
        dataset = [d for d in owner.get("/api/v1/me/datasets").json()["items"] if d["name"] == "named-v1-classify"][0]
        questions = {q["name"]: q for q in owner.get(f"/api/v1/datasets/{dataset['id']}/questions").json()["items"]}
    assert sorted(o["value"] for o in questions["category"]["settings"]["options"]) == ["errand", "home", "travel",
                                                                                          "work"]
    assert sorted(o["value"] for o in questions["importance"]["settings"]["options"]) == ["high", "low", "urgent"]


def test_serve_stop_then_start_again_keeps_data_and_credentials(tmp_path):
    """A second project's server: `serve --stop` ends it and its Redis; a new start finds the records and keys."""

    other = Server(tmp_path, free_port())
    other.start()
    try:
        make_version(tmp_path, "keep", 3)
        run(other, "push", "keep")
        creds, children = other.creds, other.children()
        stopped = run(other, "serve", "--stop")
        assert "stopped the embedded Argilla" in stopped.stdout
        assert other.proc.wait(60) == 0 and not (tmp_path / ".assay" / "argilla" / "server.json").exists()
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]  # redis too
        assert "no embedded Argilla is running" in run(other, "serve", "--stop").stdout
        db = tmp_path / ".assay" / "argilla" / "argilla.db"
        db.chmod(0o644)  # as an older assay left it
        other.start()
        assert oct(db.stat().st_mode & 0o777) == "0o600"
        assert other.creds == creds  # the same owner password and API key, not new ones
        assert set(server_records(other, "keep-v1-summarize")) == {record_id("summarize", f"keep-note-{i:05d}")
                                                                   for i in range(3)}
    finally:
        other.stop()


def test_status_and_pull_default_to_the_pushed_version(server):
    """`status NAME` and `pull NAME` follow the version that was pushed, not a newer one nobody pushed."""
    version = make_version(server.home, "later", 2)
    run(server, "push", "later")
    store = DatasetStore(server.home / "datasets")
    store.write("later", version.data(), step="curate", config={"again": True}, task="summarize")  # later@v2
    assert "later-v1-summarize: 0/2 record(s) completed" in run(server, "status", "later").stdout
    ann = annotator(server, "ann")
    submit(server, ann, server_records(server, "later-v1-summarize")[record_id("summarize", "later-note-00000")],
           {"output": "Water on day 0."})
    assert "wrote later@v3: 1 reviewed row(s)" in run(server, "pull", "later").stdout
    assert store.get("later@v3").manifest["review"]["pushed"] == "later@v1"
    unpushed = run(server, "status", "later@v2", check=False)
    assert unpushed.returncode != 0 and "no dataset 'later-v2-summarize'" in unpushed.stderr
    never = make_version(server.home, "never", 1)
    missing = run(server, "status", "never", check=False)
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0
    assert f"no version of 'never' was pushed to Argilla (looked for 'never-{never.manifest['version']}-summarize'" \
        in missing.stderr


def test_users_add_makes_an_annotator_who_can_sign_in(server):
    out = run(server, "users", "add", "carol")
    password = re.search(r"with password '([^']+)'", out.stdout)[1]
    assert len(password) >= 12 and "annotator 'carol'" in out.stdout and "workspace 'default'" in out.stdout
    token = httpx.post(f"{server.url}/api/v1/token", data={"username": "carol", "password": password})
    assert token.status_code == 201
    me = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["role"] == "annotator"
    mine = httpx.get(f"{server.url}/api/v1/me/workspaces",
                     headers={"Authorization": f"Bearer {token.json()['access_token']}"}).json()["items"]
    assert [w["name"] for w in mine] == ["default"]
    admin = run(server, "users", "add", "dave", "--role", "admin")
    assert "added admin 'dave'" in admin.stdout
    again = run(server, "users", "add", "carol", check=False)
    assert again.returncode != 0 and again.stderr.strip().count("\n") == 0
    assert "already has a user 'carol'" in again.stderr
    owner = run(server, "users", "add", "erin2", "--role", "owner", check=False)
    assert owner.returncode != 0 and "--role must be one of annotator, admin" in owner.stderr


class _RefusingProxy(http.server.BaseHTTPRequestHandler):
    """Argilla as seen through a proxy that passes everything on, except that it refuses every bulk record
    upsert with the server's own 422 shape (one validation error per record, as when the agent was refused)."""
    upstream = ""

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].endswith("/records/bulk"):
            errors = [{"type": "string_pattern_mismatch", "loc": ["body", "items", i, "suggestions", 0, "agent"],
                       "msg": "String should match pattern '^[a-zA-Z0-9-_:\\.\\/\\s]*$'"} for i in range(60)]
            self._answer(422, json.dumps({"detail": {"code": "argilla.api.errors::ValidationError",
                                                     "params": {"errors": errors}}}).encode())
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        resp = httpx.request(self.command, self.upstream + self.path, headers=headers, content=body, timeout=60)
        self._answer(resp.status_code, resp.content, resp.headers.get("content-type"))

    def _answer(self, status, content, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, *args):
        pass


def test_refused_push_is_one_line_and_leaves_no_empty_dataset(server):
    make_version(server.home, "refused", 60)
    _RefusingProxy.upstream = server.url
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        out = run(server, "push", "refused", check=False, env={"ARGILLA_API_URL": f"http://127.0.0.1:{proxy.server_port}",
                                                                "ARGILLA_API_KEY": server.creds["api_key"]})
    finally:
        proxy.shutdown()
    assert out.returncode != 0
    error = [ln for ln in out.stderr.splitlines() if "error" in ln.lower()]
    assert len(error) == 1 and len(error[0]) < 400, out.stderr
    assert "items.0.suggestions.0.agent: String should match pattern" in error[0] and "(and 59 more)" in error[0]
    with server.owner as owner:
        assert "refused-v1-summarize" not in [d["name"] for d in owner.get("/api/v1/me/datasets").json()["items"]]
    assert "pushed 60 new record(s)" in run(server, "push", "refused").stdout  # straight to the server: all of it
