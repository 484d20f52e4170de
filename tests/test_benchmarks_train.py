"""`python -m benchmarks.train --quick` still runs against the trainer's internals (a smoke run,
not a timing: the numbers live in docs/benchmarks.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]


def test_train_benchmark_quick_runs(tmp_path):
    out = tmp_path / "train.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.train", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    text = json.dumps(rows)
    assert "bare jitted step" in text and "loop" in text
