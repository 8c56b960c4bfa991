"""A run's log file: third-party progress bars, warnings and metric dicts go there, not to the terminal.

Inside `run_log(...)`, Python-level stdout and stderr (tqdm bars, the trainer's printed metric dicts,
library warnings) and the `logging` records of transformers, datasets and friends are written to
`.assay/logs/run-<time>.log`. assay's own notes (lines starting with "[assay") still reach the terminal.
The display keeps writing to the real terminal through a console made before the redirection.
With verbose=True nothing is redirected.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, TextIO

from assay.curation.synth.ledger import scrub
from assay.project import Project
from assay.redact import MaskURLs, mask_urls

THIRD_PARTY = ("transformers", "datasets", "huggingface_hub", "sentence_transformers", "accelerate", "peft", "trl",
               "torch", "httpx", "urllib3", "argilla")


class _Tee:
    """A stream that writes everything to the log and forwards assay's own lines to the terminal."""

    def __init__(self, log: TextIO, terminal: TextIO):
        self.log, self.terminal, self._line = log, terminal, ""

    def write(self, text: str) -> int:
        if not self.log.closed:  # a library that kept this stream may still write after the run ends
            self.log.write(mask_urls(scrub(text) or ""))  # keys never reach the log
        self._line += text
        *done, self._line = self._line.split("\n")
        for line in done:
            if line.startswith("[assay"):
                self.terminal.write(mask_urls(line) + "\n")
        return len(text)

    def flush(self) -> None:
        if not self.log.closed:
            self.log.flush()

    def close(self) -> None:  # absl and others close "their" stream at exit; the log file is ours to close
        pass

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    def isatty(self) -> bool:  # tqdm and rich draw no live bars into a log
        return False

    def fileno(self) -> int:
        return self.log.fileno()


@contextmanager
def run_log(project: Project, *, verbose: bool = False) -> Iterator[Path]:
    """Redirect third-party output into a new log file (yielded); restores everything on the way out."""
    folder = project.state / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    with open(path, "a", encoding="utf-8", buffering=1) as log:
        if verbose:
            yield path
            return
        out, err, show = sys.stdout, sys.stderr, warnings.showwarning
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(MaskURLs())  # HTTP clients log each request's URL, query string included
        saved = {}
        for name in THIRD_PARTY:
            logger = logging.getLogger(name)
            saved[name] = (logger.handlers[:], logger.propagate)
            logger.handlers = [handler]
            logger.propagate = False
        env = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
        os.environ.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="warning")
        sys.stdout, sys.stderr = _Tee(log, out), _Tee(log, err)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log.write(
            mask_urls(warnings.formatwarning(message, category, filename, lineno, line)))
        try:
            yield path
        finally:
            sys.stdout, sys.stderr, warnings.showwarning = out, err, show
            for name, (handlers, propagate) in saved.items():
                logger = logging.getLogger(name)
                logger.handlers, logger.propagate = handlers, propagate
            for key, value in env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
