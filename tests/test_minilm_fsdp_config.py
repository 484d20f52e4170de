"""configs/emosense/minilm_fsdp.py end to end: `emojax train` on 4 CPU devices (FSDP axis),
the pretrained MiniLM tower fine-tuned in bfloat16, shrunk to a few tiny steps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emojax.train.checkpoint import read_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
STEPS = 2
SMALL = {
    "data.global_batch_size": 8,
    "data.num_train": 64,
    "data.num_validation": 16,
    "data.num_test": 16,
    "data.worker_count": 0,
    "train.num_steps": STEPS,
    "train.log_every": 1,
    "train.eval_every": STEPS,
    "train.save_every": STEPS,
    "eval.num_batches": 1,
    "optimizer.warmup_steps": 1,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("minilm_fsdp")
    cmd = [
        sys.executable,
        "-m",
        "emojax.cli",
        "train",
        f"--config={ROOT / 'configs' / 'emosense' / 'minilm_fsdp.py'}",
        f"--workdir={workdir / 'run'}",
        f"--config.data.cache_dir={workdir / 'cache'}",
        *(f"--config.{k}={v}" for k, v in SMALL.items()),
    ]
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return workdir / "run", json.loads(out.stdout.strip().splitlines()[-1])


def test_trains_and_evaluates_with_finite_losses(trained):
    workdir, result = trained
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == STEPS and np.all(np.isfinite(losses))
    assert np.isfinite(result["eval/loss_emotion_fy"]) and 0.0 <= result["eval/head_r1"] <= 1.0


def test_text_tower_starts_from_the_pretrained_minilm_and_is_fine_tuned(trained):
    from emojax.convert import load_minilm

    workdir, _ = trained
    params = read_state(workdir / "checkpoints")["params"]
    tuned = np.asarray(params["text_encoder"]["word_embeddings"]["embedding"], np.float32)
    _, minilm, _ = load_minilm()
    pretrained = np.asarray(minilm["params"]["word_embeddings"]["embedding"])
    assert tuned.shape == pretrained.shape
    # two small Adam steps away from the shipped weights: close, but trained
    assert np.corrcoef(tuned.ravel(), pretrained.ravel())[0, 1] > 0.99
    assert not np.array_equal(tuned, pretrained)
