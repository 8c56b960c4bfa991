"""assay from a wheel, installed in a fresh venv outside the checkout: the package data ships and nothing
reads the source tree.

The venv gets the wheel alone (`--no-deps`); the dependencies come from this project's venv through a path
entry, which adds its packages but not its editable finder for the checkout, so an `assay` import that
found the checkout would fail here rather than pass unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    # built from a copy of the tracked files: setuptools' build/ folder would land in the checkout, and files
    # left there by an earlier build would go into the wheel
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    source = base / "source"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(base / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((base / "dist").glob("assay-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # every folder this interpreter takes packages from (a venv layered on another has several), as plain
    # path lines: the .pth files inside them, among them the editable finder of the checkout, do not run
    here = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(site) / "deps.pth").write_text("\n".join(here or [sysconfig.get_paths()["purelib"]]) + "\n",
                                         encoding="utf-8")
    done = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return wheel, venv


def _run(venv: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ASSAY_HOME", "VIRTUAL_ENV")}
    env.update(COLUMNS="200", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_holds_one_package_and_its_data(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"assay"}
    for data in ("assay/evals/suites/summarize.yaml", "assay/evals/gates/default.yaml",
                 "assay/evals/templates/report.html.j2", "assay/evals/templates/report.css",
                 "assay/training/configs/sft-smollm2.yaml", "assay/curation/synth/templates/summarize.j2",
                 "assay/curation/synth/data/surnames.txt", "assay/sample/notes.json", "assay/sample/gold.jsonl",
                 "assay/sample/pipeline.yaml", "assay/starter/pipeline.yaml"):
        assert data in names, data


@pytest.mark.slow
def test_installed_assay_works_from_any_folder(installed, tmp_path, assay_cache):
    _, venv = installed
    where = _run(venv, "python", "-c", "import assay, assay.evals; print(assay.__file__, assay.evals.__file__)",
                 cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(REPO) not in where.stdout and str(venv) in where.stdout

    helped = _run(venv, "assay", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "init" in helped.stdout and "demo" in helped.stdout
    evalhelp = _run(venv, "assay", "eval", "--help", cwd=tmp_path)
    assert evalhelp.returncode == 0 and "--gate" in evalhelp.stdout

    # a shipped suite is found by name (the report of issue 17: "shipped suites: " and an empty list)
    missing = _run(venv, "assay", "eval", "nosuch", "--model", "x@v1.0.0", cwd=tmp_path)
    assert missing.returncode != 0 and "summarize-test" in missing.stdout + missing.stderr

    # assay init next to an export, then the starter pipeline validates (a dry run reads every config)
    export = tmp_path / "mine"
    export.mkdir()
    (export / "my-notes.jsonl").write_text(json.dumps({"id": "1", "text": "Met Ana about the roof."}) + "\n")
    started = _run(venv, "assay", "init", str(export), cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    assert sorted(p.name for p in export.glob("*.yaml")) == ["curate.yaml", "gate.yaml", "pipeline.yaml",
                                                             "synth.yaml", "train.yaml"]
    assert 'source: "my-notes.jsonl"' in (export / "pipeline.yaml").read_text()
    dry = _run(venv, "assay", "run", "pipeline.yaml", "--dry-run", cwd=export)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would run" in dry.stdout

    # the demo's curation, from an empty folder: written there, never into site-packages
    project = tmp_path / "demo"
    project.mkdir()
    demo = _run(venv, "assay", "demo", "--steps", "curate", cwd=project)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert (project / "datasets" / "notes" / "v1" / "data.parquet").is_file()
    site = next((venv / "lib").glob("python3*/site-packages/assay"))
    assert not list(site.rglob("*.parquet")) and not (site / "datasets").exists()
