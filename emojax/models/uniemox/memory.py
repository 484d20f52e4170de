"""Per-device memory of a UniEmoX train step, from the compiled step on fake CPU devices.

    python -m emojax.models.uniemox.memory \
        --config=emojax/configs/uniemox/pretrain_vitl16_emoset.py \
        --devices=16 [--batch=256] [--json=PATH]

The trainer's own step (``emojax.train``: the method's loss, optax, shardings of the config's
mesh, state donated) is lowered for abstract inputs (no weights are loaded, nothing is run) and
compiled for ``--devices`` CPU devices, which this command creates by re-running itself in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``. The frozen teacher and
the prompt table are sharded by their logical axes. Reported per device: arguments, outputs,
temporaries and their sum minus the donated (aliased) bytes, from ``compiled.memory_analysis()``.
XLA:CPU's buffer assignment is not the accelerator's: read the numbers as an estimate of the
resident state (exact) plus the activations (close for the same sharding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

GIB = 2**30


def _abstract_frozen(method, mesh):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from emojax.nn.clip import CLIP
    from emojax.parallel import LOGICAL_AXIS_RULES, strip_boxes, tree_shardings

    if not method.guided:
        return {}
    t, d = method.teacher, method.config.data
    images = jnp.zeros((1, t.vision.image_size, t.vision.image_size, 3))
    ids = jnp.zeros((1, 2), jnp.int32)
    boxed = jax.eval_shape(lambda: CLIP(t).init(jax.random.key(0), images, ids)["params"])
    rows = int(d.num_train) + int(d.num_validation) + int(d.num_test)
    table = nn.LogicallyPartitioned(
        jax.ShapeDtypeStruct((rows, t.projection_dim), jnp.float32), (None, "embed")
    )
    tree = {"teacher": boxed, "prompts": table}
    with nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        shardings = tree_shardings(tree, mesh, LOGICAL_AXIS_RULES)
    return jax.tree.map(
        lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s),
        strip_boxes(tree),
        shardings,
    )


def estimate(config) -> dict:
    """Compile ``config``'s train step on this process's devices; memory per device (GiB)."""
    import flax.linen as nn
    import jax

    from emojax.parallel import LOGICAL_AXIS_RULES, make_mesh
    from emojax.train.config import validate_config
    from emojax.train.loop import _Run

    config = validate_config(config)
    mesh = make_mesh(config.mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        run = _Run(config, mesh)
        batch = {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=run.batch_sharding)
            for k, v in run.expected_batch.items()
        }
        frozen = _abstract_frozen(run.method, mesh)
        step = run.jit_train_step()
        compiled = step.lower(run.abstract_state, batch, frozen).compile()
    stats = compiled.memory_analysis()
    argument = stats.argument_size_in_bytes
    output = stats.output_size_in_bytes
    temp = stats.temp_size_in_bytes
    alias = stats.alias_size_in_bytes
    return {
        "devices": jax.device_count(),
        "mesh": dict(zip(mesh.axis_names, mesh.devices.shape, strict=True)),
        "global_batch": int(config.data.global_batch_size),
        "argument_gib": argument / GIB,
        "output_gib": output / GIB,
        "temp_gib": temp / GIB,
        "alias_gib": alias / GIB,
        "total_gib": (argument + output + temp - alias) / GIB,
    }


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m emojax.models.uniemox.memory")
    parser.add_argument("--config", required=True, help="a uniemox config file")
    parser.add_argument("--devices", type=int, default=16, help="fake CPU devices")
    parser.add_argument("--batch", type=int, default=0, help="global batch (0: the config's)")
    parser.add_argument("--json", default="", help="write the result here")
    parser.add_argument("--in_subprocess", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if not args.in_subprocess:
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
        ).strip()
        module = "emojax.models.uniemox.memory"
        command = [sys.executable, "-m", module, *(argv or sys.argv[1:]), "--in_subprocess"]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"the compile in a subprocess failed:\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        for key, value in result.items():
            print(f"{key:>14}: {value:.3f}" if isinstance(value, float) else f"{key:>14}: {value}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        return result
    from emojax.train import load_config

    config = load_config(args.config)
    if args.batch:
        config.data.global_batch_size = args.batch
    print(json.dumps(estimate(config)))
    return {}


if __name__ == "__main__":
    main()
