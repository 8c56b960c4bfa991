"""Credentials in a teacher's URL (user:password@, ?api_key=) are used for the calls and written nowhere:
not in the manifest, the tables, the cache, the ledger, the log, the printed tables or error messages."""

import io
import logging

import pytest
from fake_provider import FakeProvider
from rich.console import Console

from assay.config import load_config
from assay.curation.synth.config import SynthConfig
from assay.curation.synth.run import synth
from assay.display import show_synth_run
from assay.errors import ConfigError
from assay.project import Project
from assay.records import notes_frame
from assay.redact import mask_url, mask_urls
from assay.store import DatasetStore

PASSWORD, TOKEN = "pAss-w0rd-never-written", "qu3ry-t0ken-never-written"


class PathRecordingFake(FakeProvider):
    """Keeps each request's raw path, query string included (the base fake keeps the path only)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.raw_paths: list[str] = []
        fake, base = self, self._server.RequestHandlerClass

        class Handler(base):
            def _handle(self, method: str) -> None:
                fake.raw_paths.append(self.path)
                super()._handle(method)

        self._server.RequestHandlerClass = Handler


@pytest.mark.parametrize("url, shown", [
    ("http://user:pass@host:8000/v1", "http://***@host:8000/v1"),
    ("https://u:p@ss@h/v1?api_key=abc&model=x#token=t", "https://***@h/v1?api_key=***&model=x#token=***"),
    ("http://h/v1?X-Amz-Signature=s1&sig=s2&key=k&page=2", "http://h/v1?X-Amz-Signature=***&sig=***&key=***&page=2"),
    ("http://localhost:8000/v1", "http://localhost:8000/v1"),
])
def test_mask_url(url, shown):
    assert mask_url(url) == shown
    assert mask_urls(f"teacher openai-compatible:m@{url} failed") == f"teacher openai-compatible:m@{shown} failed"


@pytest.mark.parametrize("query", ["", f"?api_key={TOKEN}&tier=free"], ids=["userinfo", "userinfo+query"])
def test_credentials_in_a_teacher_url_are_used_and_written_nowhere(query, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # the SDK and its HTTP client log every request URL
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    store = DatasetStore(tmp_path / "datasets")
    df = notes_frame({"note_id": f"n{i}", "title": None, "text": text, "category": "work", "origin": "export",
                      "synthetic": False} for i, text in enumerate(["Ship the export feature by March 3.",
                                                                    "Book the hotel near the station."]))
    version = store.write("notes", df, step="curate", config={}, gaps=[])
    out = io.StringIO()
    with PathRecordingFake(hang_s=5.0) as fake:
        host = fake.url.removeprefix("http://")
        spec = f"openai-compatible:m@http://alice:{PASSWORD}@{host}/v1{query}"
        cfg = SynthConfig(teachers=["rule:lead", spec], limits={"openai-compatible": {"concurrency": 2}})
        estimate = synth(version.ref, cfg.model_copy(update={"dry_run": True}), store=store, project=Project(tmp_path))
        run = synth(version.ref, cfg, store=store, project=Project(tmp_path))
        show_synth_run(Console(file=out, width=200), estimate)
        show_synth_run(Console(file=out, width=200), run)
        calls = [c for c in fake.calls() if c["path"] == "/v1/chat/completions"]
        paths = list(fake.raw_paths)

    # the server saw the credentials: the password as Basic auth, the token in the query
    assert len(calls) == 2 and all(c["api_key"].startswith("Basic ") for c in calls)
    assert all(p.endswith(query.replace("?", "", 1)) for p in paths if "chat/completions" in p)
    shown = f"openai-compatible:m@http://***@{host}/v1" + ("?api_key=***&tier=free" if query else "")
    assert run.manifest["teachers"] == ["rule:lead", shown] and shown in run.manifest["calls"]
    assert shown in out.getvalue() and "HTTP Request: POST" in caplog.text

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in written) and any(p.name == "manifest.json" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in (PASSWORD, TOKEN):
            assert secret.encode() not in data, f"{secret} written to {path.relative_to(tmp_path)}"
    for secret in (PASSWORD, TOKEN):
        assert secret not in out.getvalue() and secret not in caplog.text


def test_a_bad_teacher_spec_is_reported_with_its_credentials_masked():
    spec = f"openai-compatibel:m@http://alice:{PASSWORD}@inference.example.com/v1?api_key={TOKEN}"
    with pytest.raises(ConfigError) as info:
        load_config(SynthConfig, None, [f"teachers={spec}"])
    message = str(info.value)
    assert "openai-compatible" in message and "inference.example.com" in message
    assert PASSWORD not in message and TOKEN not in message
