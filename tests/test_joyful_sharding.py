"""Joyful's training step with the dialogues sharded over 8 fake CPU devices equals the
single-device step (loss, every gradient, BatchNorm statistics; contrast views included)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a subprocess with 8 fake devices (compiles twice)

ROOT = Path(__file__).parents[1]

SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
from emojax.models.joyful.method import Joyful
from emojax.parallel import LOGICAL_AXIS_RULES, batch_sharding, make_mesh
from emojax.train import load_config
from emojax.train.config import validate_config

assert jax.device_count() == 8, jax.devices()
c = load_config("emojax/configs/joyful/paper.py")  # both view kinds, paper fusion
with c.unlocked():
    c.data.dims = {"audio": 5, "text": 6, "visual": 4}
    c.data.max_len = 7
    c.model.fusion.update(local_dim=8, hidden=12, code_dim=6, global_heads=3)
    c.model.context.update(layers=1, heads=2, mlp_dim=8, out_dim=6)
    c.model.graph.update(window_past=2, window_future=2, heads=2)
    c.model.classifier_hidden = 5
    c.model.dropout = 0.1
c = validate_config(c)
method = Joyful(c)
rng = np.random.default_rng(0)
dialogues = [
    {**{m: rng.normal(size=(n, d)).astype(np.float32) for m, d in c.data.dims.items()},
     "speaker": rng.integers(0, 3, n), "label": rng.integers(0, 6, n)}
    for n in rng.integers(1, 8, size=16)
]
batch = method.collate(dialogues)
model = method.build_model()
variables = jax.jit(lambda b: method.init_variables(model, jax.random.key(0), b))(batch)

def step(v, b):
    def f(params):
        v2 = {**v, "params": params}
        loss, (metrics, coll) = method.loss(model, v2, b, jax.random.key(1), train=True)
        return loss, coll
    (loss, coll), grads = jax.value_and_grad(f, has_aux=True)(v["params"])
    return loss, grads, coll

single = jax.jit(step)(variables, batch)
mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
    sharded_batch = jax.device_put(batch, batch_sharding(mesh))
    assert len(sharded_batch["text"].sharding.device_set) == 8
    sharded = jax.jit(step)(variables, sharded_batch)
flat_a, flat_b = jax.tree.leaves(single), jax.tree.leaves(sharded)
assert len(flat_a) == len(flat_b)
for a, b in zip(flat_a, flat_b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
print("OK", float(single[0]))
"""


def test_sharded_step_equals_single_device():
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "OK" in result.stdout
