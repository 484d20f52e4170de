"""A non-editable install finds its configs: ``pip install .`` into a clean virtualenv, then
``emojax quickstart --help`` and a short smoke quickstart from another directory."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]


def test_non_editable_install_runs_quickstart(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (and pip) come from the test environment, without network; the emojax
    # of the test environment (an editable install) does not: .pth paths are plain entries.
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # a copy of the tracked sources: setuptools writes build/ next to them
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "workdirs", "build", "__pycache__", "*.egg-info", ".pytest_cache"
        ),
    )
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [python, "-c", "import emojax, emojax.configs; print(emojax.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(purelib), where  # the installed copy, not the checkout
    emojax_cli = venv / "bin" / "emojax"
    helped = subprocess.run(
        [emojax_cli, "quickstart", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert helped.returncode == 0 and "--steps" in helped.stdout + helped.stderr
    run = subprocess.run(
        [emojax_cli, "quickstart", "smoke", "--steps=4", f"--workdir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert report["num_examples"] == 256 and report["step"] == 4
    assert (tmp_path / "run" / "report" / "training_curves.png").is_file()
