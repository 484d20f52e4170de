"""Training engine: the smoke config's step time, and the loop's overhead over the bare step.

    python -m benchmarks.train [--quick] [--json PATH]

Rows (ms per optimizer step; "peer" = the bare jitted step on a device-resident batch):
- ``loop``: ``emojax.train.train`` per step, from the wall times of its metrics.jsonl lines
  after the first window (so compile, start-up and the final save are excluded); includes the
  grain pipeline, global-batch assembly, dispatch, metric fetches every 10 steps and the
  progress line.
- ``loop + save every 10``: the same with an async Orbax save every 10 steps.
- ``bare step + device_put``: the bare step fed a new host batch each call (no pipeline).
- ``data``: ``next(iterator)`` + the host-to-device transfer alone.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import flax.linen as nn
import jax

from benchmarks.common import Row, parse_args, print_table, time_ms, write_json
from emojax.parallel import LOGICAL_AXIS_RULES, make_mesh
from emojax.train import load_config, train, validate_config
from emojax.train.loop import _data_iterator, _Run

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.py"


def smoke_config(num_steps: int, **overrides):
    base = {
        "train.num_steps": num_steps,
        "train.log_every": 10,
        "train.eval_every": 0,
        "train.save_every": 0,
        "train.keep_best_metric": "",
    }
    return load_config(str(SMOKE), {**base, **overrides})


def loop_ms(num_steps: int, repeats: int, **overrides) -> float:
    """ms per step inside train(), from the wall times of metrics.jsonl lines (log every 10):
    excludes compilation, start-up and the final save; includes everything else."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as workdir:
            train(smoke_config(num_steps, **overrides), workdir)
            lines = Path(workdir, "metrics.jsonl").read_text().splitlines()
            records = [json.loads(line) for line in lines if "loss" in line]
        first, last = records[0], records[-1]  # the first window holds the compile: skip it
        per_step = (last["wall_time"] - first["wall_time"]) / (last["step"] - first["step"])
        best = min(best, 1e3 * per_step)
    return best


def bare_and_data_ms(repeats: int) -> tuple[float, float, float, float | None]:
    config = validate_config(smoke_config(100))
    mesh = make_mesh(config.mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        run = _Run(config, mesh)
        data = _data_iterator(run.method, config, "train", train=True, mesh=mesh)
        batch = run.global_batch(next(data))
        step = run.jit_train_step()
        state = [run.init_fn()]
        frozen = run.frozen(tempfile.mkdtemp())  # {} for the smoke method
        analysis = step.lower(state[0], batch, frozen).cost_analysis()  # global FLOPs of a step

        def one_step():
            state[0], metrics = step(state[0], batch, frozen)
            return metrics

        def ten_steps():
            for _ in range(10):
                out = one_step()
            return out

        bare = time_ms(ten_steps, repeats=repeats, warmup=2) / 10
        host_batches = [next(data) for _ in range(10)]

        def ten_steps_new_batches():
            for local in host_batches:
                state[0], out = step(state[0], run.global_batch(local), frozen)
            return out

        with_put = time_ms(ten_steps_new_batches, repeats=repeats, warmup=2) / 10
        data_ms = time_ms(lambda: run.global_batch(next(data)), repeats=repeats * 10, warmup=3)
        analysis = analysis[0] if isinstance(analysis, list) else analysis
    return bare, with_put, data_ms, (analysis or {}).get("flops")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    num_steps, repeats = (100, 2) if args.quick else (500, 3)
    bare, with_put, data_ms, flops = bare_and_data_ms(5 if args.quick else 20)
    loop = loop_ms(num_steps, repeats)
    loop_save = loop_ms(num_steps, repeats, **{"train.save_every": 10})
    devices = len(jax.devices())
    rows = [
        Row("bare jitted step (smoke, batch 32)", bare, extra={"flops/step": flops}),
        Row("bare step + device_put of a new batch", with_put, bare),
        Row(
            "loop (train(), log every 10)", loop, bare, extra={"overhead_ms": round(loop - bare, 3)}
        ),
        Row(
            "loop + async save every 10",
            loop_save,
            bare,
            extra={"overhead_ms": round(loop_save - bare, 3)},
        ),
        Row("data: next + global batch", data_ms),
    ]
    title = f"Training engine, smoke config, {devices} device(s)"
    print_table(title, rows, peer="bare jit")
    write_json(args.json, title, rows)


if __name__ == "__main__":
    main()
