"""The `emojax train` CLI in subprocesses: contract, SIGKILL resume, SIGTERM, two processes.

Every run uses 8 CPU devices in total (one process x 8, or two processes x 4 via
launch/local.sh) and the same config, so all are compared with one in-process reference run.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from emojax.train import load_config, train
from emojax.train.checkpoint import read_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke.py"
NUM_STEPS = 12
OVERRIDES = {
    "train.num_steps": NUM_STEPS,
    "train.log_every": 1,
    "train.save_every": 2,
    "train.eval_every": 0,
    "mesh.data": 8,
}


def command(workdir, *cli_flags, **extra) -> list[str]:
    flags = [f"--config.{k}={v}" for k, v in {**OVERRIDES, **extra}.items()]
    return [
        sys.executable,
        "-m",
        "emojax.cli",
        "train",
        f"--config={SMOKE}",
        f"--workdir={workdir}",
        *cli_flags,
        *flags,
    ]


def env(devices: int = 8) -> dict:
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }


def logged(workdir) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_step(process, workdir, step: int, timeout: float = 240) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = logged(workdir)
        if records and records[-1]["step"] >= step:
            return records[-1]["step"]
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"step {step} not reached in {timeout}s")


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    train(load_config(str(SMOKE), OVERRIDES), workdir)
    return workdir


def test_sigkill_at_a_random_step_then_rerun_is_bitwise_identical(reference, tmp_path):
    kill_at = random.Random().randint(3, NUM_STEPS - 2)
    process = subprocess.Popen(
        command(tmp_path),
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reached = wait_for_step(process, tmp_path, kill_at)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    # the rerun also takes the single malloc arena: host-memory settings must not change numerics
    rerun = subprocess.run(
        command(tmp_path, "--single_malloc_arena"),
        env=env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first_progress = next(line for line in rerun.stdout.splitlines() if line.startswith("step "))
    assert first_progress != f"step 1/{NUM_STEPS}" or reached < 2, first_progress  # resumed
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["step"] == NUM_STEPS
    # The CLI contract: Orbax checkpoints, metrics.jsonl with step+loss, TensorBoard events.
    assert (tmp_path / "checkpoints" / str(NUM_STEPS) / "state").is_dir()
    records = logged(tmp_path)
    assert [r["step"] for r in records] == list(range(1, NUM_STEPS + 1))
    assert all("loss" in r for r in records)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    # Killed at step `reached`, resumed from the last checkpoint: bitwise the reference.
    got, want = read_state(tmp_path / "checkpoints"), read_state(reference / "checkpoints")
    for a, b in zip(leaves(got["params"]), leaves(want["params"]), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {reached}")
    for a, b in zip(leaves(got["opt_state"]), leaves(want["opt_state"]), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {reached}")


def test_sigterm_saves_the_current_step_and_exits_zero(tmp_path):
    process = subprocess.Popen(
        command(tmp_path, **{"train.num_steps": 100000, "train.save_every": 0}),
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(process, tmp_path, 3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["preempted"] is True and result["step"] >= 3
    assert f"preempted: checkpoint saved at step {result['step']}" in stdout
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [result["step"]]


def test_two_processes_match_one_process(reference, tmp_path):
    launcher = [str(ROOT / "launch" / "local.sh"), "2", "4", "--"]
    run = subprocess.run(
        launcher + command(tmp_path),
        env=env(4),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    two = [r["loss"] for r in logged(tmp_path)]
    one = [r["loss"] for r in logged(reference)]
    np.testing.assert_allclose(two, one, rtol=1e-5)
    got, want = read_state(tmp_path / "checkpoints"), read_state(reference / "checkpoints")
    for a, b in zip(leaves(got["params"]), leaves(want["params"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_gs_workdir_sigkill_rerun_and_eval(reference, gcs_emulator, tmp_path):
    """`--workdir=gs://bucket/run` on a local GCS emulator: killed mid-run, rerun with the same
    command, bitwise the uninterrupted local run; `emojax eval` reads the same URL; nothing is
    written to a local `gs:` folder."""
    fs = gcs_emulator.filesystem()
    bucket = f"emojax-{os.getpid()}-{int(time.time())}"
    gcs_emulator.make_bucket(bucket)
    workdir = f"gs://{bucket}/run"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    gcs_env = {**env(), **gcs_emulator.env}

    def remote_records() -> list[dict]:
        path = f"{bucket}/run/metrics.jsonl"
        if not fs.exists(path):
            return []
        text = fs.cat(path).decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    kill_at = random.Random().randint(3, NUM_STEPS - 2)
    process = subprocess.Popen(
        command(workdir), env=gcs_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline, reached = time.time() + 240, 0
    while reached < kill_at:
        records = remote_records()
        reached = records[-1]["step"] if records else 0
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()[1][-3000:]}")
        if time.time() > deadline:
            process.kill()
            raise AssertionError(f"step {kill_at} not reached in 240s")
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    rerun = subprocess.run(
        command(workdir), env=gcs_env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first_progress = next(line for line in rerun.stdout.splitlines() if line.startswith("step "))
    assert first_progress != f"step 1/{NUM_STEPS}" or reached < 2, first_progress  # resumed
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["step"] == NUM_STEPS

    evaluated = subprocess.run(
        [*command(workdir)[:3], "eval", *command(workdir)[4:]],
        env=gcs_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["step"] == NUM_STEPS

    # metrics.jsonl rewritten whole (no append on GCS), TensorBoard events uploaded, config.json
    assert [r["step"] for r in remote_records()] == list(range(1, NUM_STEPS + 1))
    assert fs.glob(f"{bucket}/run/tensorboard/events.out.tfevents.*")
    assert fs.exists(f"{bucket}/run/config.json")
    assert fs.exists(f"{bucket}/run/checkpoints/{NUM_STEPS}/commit_success.txt")
    # nothing local: no `gs:` folder where the command ran, nor in the repository
    assert not (cwd / "gs:").exists() and not list(cwd.iterdir())
    assert not (ROOT / "gs:").exists()

    # Killed at step `reached`, resumed from the last checkpoint: bitwise the reference.
    local = tmp_path / "copy"
    prefix = f"{bucket}/run/checkpoints/"
    for name in fs.find(prefix):
        target = local / name.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target))
    got, want = read_state(local), read_state(reference / "checkpoints")
    for a, b in zip(leaves(got["params"]), leaves(want["params"]), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {reached}")
    for a, b in zip(leaves(got["opt_state"]), leaves(want["opt_state"]), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {reached}")
