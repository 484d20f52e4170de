"""Method interface v2 across processes: extra state survives SIGKILL + resume bitwise (CLI),
and whole-split evaluation with two processes counts every example once."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from toy_config import get_config

from emojax.train import evaluate, train
from emojax.train.checkpoint import read_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "tests" / "toy_config.py"
STEPS = 30


def env(devices: int = 8, **extra) -> dict:
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


def cli(command, workdir, name, **overrides):
    flags = [f"--config.{k}={v}" for k, v in overrides.items()]
    return [
        sys.executable,
        "-m",
        "emojax.cli",
        command,
        f"--config={CONFIG}:{name}",
        f"--workdir={workdir}",
        *flags,
    ]


def logged_steps(workdir) -> int:
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return lines[-1]["step"] if lines else 0


def test_extra_state_survives_sigkill_bitwise(tmp_path):
    config = get_config("QueueRegression")
    config.train.num_steps = STEPS
    train(config, tmp_path / "reference")
    overrides = {"train.num_steps": STEPS}
    kill_at = random.Random().randint(4, STEPS - 6)
    process = subprocess.Popen(
        cli("train", tmp_path / "run", "QueueRegression", **overrides),
        env=env(TOY_SLOW_READS="0.03"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    deadline = time.time() + 240
    while logged_steps(tmp_path / "run") < kill_at:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reached = logged_steps(tmp_path / "run")
    assert reached < STEPS, "the run finished before it could be killed"
    rerun = subprocess.run(
        cli("train", tmp_path / "run", "QueueRegression", **overrides),
        env=env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    got = read_state(tmp_path / "run" / "checkpoints")
    want = read_state(tmp_path / "reference" / "checkpoints")
    assert int(got["extra"]["count"]) == STEPS
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {reached}")


def test_two_process_evaluation_counts_every_example(tmp_path):
    config = get_config("Classifier")
    config.train.num_steps = 3
    train(config, tmp_path)
    one = evaluate(config, tmp_path)
    launcher = [str(ROOT / "launch" / "local.sh"), "2", "4", "--"]
    run = subprocess.run(
        launcher + cli("eval", tmp_path, "Classifier"),
        env=env(4),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    two = json.loads(run.stdout.strip().splitlines()[-1])
    assert two["eval/num_examples"] == 37 == one["eval/num_examples"]
    for key in ("eval/accuracy", "eval/weighted_f1", "eval/R@1", "eval/median_rank"):
        assert two[key] == pytest.approx(one[key], rel=1e-6), key
