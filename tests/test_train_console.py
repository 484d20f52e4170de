"""The console is for people: errors name the file, library logs only with --verbosity."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


def emojax(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "emojax.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=timeout,
    )


def test_a_missing_config_file_is_named(tmp_path):
    run = emojax("train", f"--config={tmp_path / 'nope.py'}", f"--workdir={tmp_path}")
    assert run.returncode == 1
    assert f"config file {tmp_path / 'nope.py'} does not exist" in run.stderr


def test_training_prints_progress_and_results_only(tmp_path):
    args = (
        "train",
        "--config=configs/smoke.py",
        "--config.train.num_steps=20",
        "--config.train.eval_every=10",
    )
    quiet = emojax(*args, f"--workdir={tmp_path / 'a'}")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    lines = (quiet.stdout + quiet.stderr).strip().splitlines()
    # two progress lines, two eval lines, the final JSON: no orbax/absl INFO dumps
    assert len(lines) <= 6, lines
    assert not any(line.startswith(("I", "W")) and "]" in line[:40] for line in lines), lines
    loud = emojax(*args, f"--workdir={tmp_path / 'b'}", "--verbosity=1")
    assert loud.returncode == 0
    assert len((loud.stdout + loud.stderr).splitlines()) > 50
