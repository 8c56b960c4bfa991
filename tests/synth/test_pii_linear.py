"""The privacy guard runs before every remote call, so no input may make it slow: every recognizer is
linear-time. Inputs built to make a backtracking pattern go quadratic or worse (benchmarks/bench_pii.py)."""

import sys
import time
from pathlib import Path

import pytest

from assay.curation.synth.pii import Vault

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_pii import adversarial_inputs  # noqa: E402

SMALL, LARGE = adversarial_inputs(10_000), adversarial_inputs(40_000)


def _seconds(text: str) -> float:
    start = time.perf_counter()
    vault = Vault()
    restored, _ = vault.restore(vault.redact(text))
    assert restored == text
    return time.perf_counter() - start


def test_the_street_pattern_that_took_six_seconds():
    assert _seconds("1 rue " + "a" * 100 + "!") < 0.1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_whole_guard_on_adversarial_10kb_input_is_fast_and_grows_linearly(name):
    small = _seconds(SMALL[name])
    assert small < 1.0, f"{name}: {small:.2f} s for 10 kB"
    # four times the input: linear is ~4x; quadratic would be ~16x (a floor absorbs timer noise on tiny times)
    large = _seconds(LARGE[name])
    assert large < max(8 * small, 0.2), f"{name}: {small:.3f} s for 10 kB, {large:.3f} s for 40 kB"
