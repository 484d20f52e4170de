"""clip_loss / siglip_loss forward+backward vs open_clip's ClipLoss / SigLipLoss (same process).

    python -m benchmarks.losses [--quick] [--json PATH]

Rows: emojax ms, torch (open_clip) ms, ratio torch/emojax, and the floor: the three B x B x D
products every forward+backward needs (x y^T, G y, G^T x), timed as one jitted function. The
three are timed in alternation (medians over rounds) so that load from other processes hits all.
A second table gives per-device temp memory (``memory_analysis``) of the sharded losses against
the dense ones on 8 fake CPU devices, computed in a subprocess so the timings keep one device.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    Row,
    interleaved_ms,
    parse_args,
    print_table,
    write_json,
)
from emojax.losses import clip_loss, siglip_loss

TITLE = "losses: forward+backward vs open_clip"


def open_clip_loss_module():
    """open_clip's loss.py loaded by path (the package __init__ imports torchvision)."""
    import torch

    path = pathlib.Path(torch.__file__).parent.parent / "open_clip" / "loss.py"
    spec = importlib.util.spec_from_file_location("open_clip_loss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _floor_fn():
    def three_products(x, y, g):
        return x @ y.T, g @ y, g.T @ x

    return jax.jit(three_products)


def _torch_step(loss_module, kind: str, x_np, y_np):
    import torch
    import torch.nn.functional as F

    x = torch.tensor(x_np, requires_grad=True)
    y = torch.tensor(y_np, requires_grad=True)
    if kind == "clip":
        log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
        bias = None
        loss_fn = loss_module.ClipLoss()
    else:
        log_scale = torch.tensor(math.log(10.0), requires_grad=True)
        bias = torch.tensor(-10.0, requires_grad=True)
        loss_fn = loss_module.SigLipLoss()

    def step():
        for t in (x, y, log_scale, bias):
            if t is not None:
                t.grad = None
        scale = log_scale.exp().clamp(max=100.0) if kind == "clip" else log_scale.exp()
        loss = loss_fn(F.normalize(x, dim=-1), F.normalize(y, dim=-1), scale, bias)
        loss.backward()
        return None

    return step


def _emojax_step(kind: str, x, y):
    if kind == "clip":
        fn = jax.jit(jax.value_and_grad(clip_loss, argnums=(0, 1, 2)))
        args = (x, y, jnp.float32(math.log(1 / 0.07)))
    else:
        fn = jax.jit(jax.value_and_grad(siglip_loss, argnums=(0, 1, 2, 3)))
        args = (x, y, jnp.float32(math.log(10.0)), jnp.float32(-10.0))
    return lambda: fn(*args)


def timing_rows(shapes, rounds: int) -> list[Row]:
    import torch

    loss_module = open_clip_loss_module()
    floor = _floor_fn()
    rows = []
    for batch, dim in shapes:
        rng = np.random.default_rng(0)
        x_np = rng.standard_normal((batch, dim)).astype(np.float32)
        y_np = rng.standard_normal((batch, dim)).astype(np.float32)
        x, y = jnp.asarray(x_np), jnp.asarray(y_np)
        g = jnp.asarray(rng.standard_normal((batch, batch)).astype(np.float32))
        for kind in ("clip", "siglip"):
            ms = interleaved_ms(
                {
                    "floor": lambda: floor(x, y, g),  # noqa: B023
                    "emojax": _emojax_step(kind, x, y),
                    "torch": _torch_step(loss_module, kind, x_np, y_np),
                },
                rounds,
            )
            rows.append(
                Row(
                    f"{kind}_loss fwd+bwd B={batch} D={dim}",
                    ms["emojax"],
                    ms["torch"],
                    extra={
                        "floor_ms": round(ms["floor"], 1),
                        "emojax/floor": round(ms["emojax"] / ms["floor"], 2),
                        "torch_threads": torch.get_num_threads(),
                    },
                )
            )
    return rows


def memory_table(local_batches=(256, 512, 1024, 2048), dim: int = 512, chunk: int = 256):
    """Per-device temp MiB of fwd+bwd at each local batch on an 8-device mesh (run in a child)."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from emojax.losses import clip_loss_sharded, siglip_loss_ring

    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    cases = {
        "clip_loss_sharded": lambda x, y, s: clip_loss_sharded(
            x, y, s, mesh=mesh, chunk_size=chunk
        ),
        "clip_loss (GSPMD)": lambda x, y, s: clip_loss(x, y, s),
        "siglip_loss_ring": lambda x, y, s: siglip_loss_ring(
            x, y, s, -10.0, mesh=mesh, chunk_size=chunk
        ),
        "siglip_loss (GSPMD)": lambda x, y, s: siglip_loss(x, y, s, -10.0),
    }
    table = {}
    for name, fn in cases.items():
        table[name] = {}
        for b in local_batches:
            rows = jax.ShapeDtypeStruct(
                (8 * b, dim), jnp.float32, sharding=NamedSharding(mesh, P("data"))
            )
            scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, P()))
            lowered = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2))).lower(rows, rows, scalar)
            table[name][b] = lowered.compile().memory_analysis().temp_size_in_bytes / 2**20
    return table


def _memory_in_subprocess(quick: bool) -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    batches = "(128, 256, 512)" if quick else "(256, 512, 1024, 2048)"
    code = (
        "import json; from benchmarks.losses import memory_table; "
        f"print(json.dumps(memory_table(local_batches={batches})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_memory(table: dict) -> None:
    batches = list(next(iter(table.values())))
    print("\nper-device temp memory, fwd+bwd, MiB (8 devices, D=512, chunk 256)")
    print(f"{'loss':<22}" + "".join(f"{'b=' + str(b):>12}" for b in batches) + f"{'x2 ratio':>10}")
    for name, per in table.items():
        vals = [per[b] for b in batches]
        ratio = vals[-1] / vals[-2]
        print(f"{name:<22}" + "".join(f"{v:12.2f}" for v in vals) + f"{ratio:10.2f}")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    shapes = [(1024, 256), (2048, 512)] if args.quick else [(4096, 512), (8192, 512)]
    rows = timing_rows(shapes, rounds=3 if args.quick else 5)
    print_table(TITLE, rows, peer="torch")
    memory = _memory_in_subprocess(args.quick)
    print_memory(memory)
    write_json(args.json, TITLE, rows)
    if args.json:
        payload = json.loads(pathlib.Path(args.json).read_text())
        payload["memory_temp_mib"] = memory
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
