"""Shared test helpers."""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture
def assay():
    """Run the real CLI in a subprocess: assay(*args, home=PROJECT_DIR, check=True)."""

    def assay(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "ASSAY_HOME": str(home), "COLUMNS": "200"}
        proc = subprocess.run([sys.executable, "-m", "assay", *args], env=env, capture_output=True, text=True,
                              timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"assay {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return assay


@pytest.fixture(scope="session")
def assay_cache():
    """The converted-model cache shared by the model tests, offline; a pre-set ASSAY_CACHE wins."""
    with pytest.MonkeyPatch.context() as mp:
        repo = Path(__file__).resolve().parent.parent
        mp.setenv("ASSAY_CACHE", os.environ.get("ASSAY_CACHE") or str(repo / ".cache" / "assay"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield Path(os.environ["ASSAY_CACHE"])


@pytest.fixture
def no_hang():
    """no_hang(seconds) is a context that fails its body with TimeoutError after `seconds` instead of letting
    it hang the suite (a FIFO opened for reading, a parser stuck on hostile input)."""

    @contextmanager
    def within(seconds: float):
        def alarm(*_):
            raise TimeoutError(f"still running after {seconds} s")

        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    return within
