"""The one method-agnostic trainer: ``train(config, workdir)`` and ``evaluate(config, workdir)``.

Read top to bottom: validate config -> workdir -> method + model -> mesh -> optimizer ->
sharded state (restored from the newest readable checkpoint, or initialised) -> data iterator
(restored to the same position) -> jitted step with explicit shardings and donated state ->
loop (log, eval, save, preemption) -> final save.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from emojax.data.pipeline import make_data_iterator
from emojax.models import get_method
from emojax.models.base import overrides
from emojax.parallel import (
    LOGICAL_AXIS_RULES,
    batch_sharding,
    data_parallel_size,
    global_batch,
    make_mesh,
)
from emojax.train import init_from as init_from_lib
from emojax.train.checkpoint import Checkpointer
from emojax.train.config import validate_config
from emojax.train.evaluate import (
    collect_outputs,
    make_predict,
    merge_metrics,
    num_eval_batches,
    pad_local_batch,
)
from emojax.train.frozen import load_frozen
from emojax.train.observe import MetricsWriter, Progress, compiled_flops, peak_flops
from emojax.train.optim import make_optimizer
from emojax.train.state import sharded_init
from emojax.train.step import loss_variables, make_train_step
from emojax.train.workdir import as_path


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/Inf (``train.nan_policy="stop"``)."""


class WorkdirError(OSError):
    """The workdir cannot be created or written."""


def prepare_workdir(workdir: str | os.PathLike) -> epath.Path:
    """Create ``workdir`` (a local path or a URL such as ``gs://bucket/run``) and check that this
    process can write to it, or raise :class:`WorkdirError`."""
    path = as_path(workdir)
    try:
        path.mkdir(parents=True, exist_ok=True)  # a no-op on object stores
        probe = path / f".write_probe_{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except Exception as err:  # noqa: BLE001 - OSError locally; the fsspec client's errors on URLs
        hint = ""
        if isinstance(err, ImportError):
            hint = " (install the filesystem's client, e.g. `pip install gcsfs` for gs://)"
        raise WorkdirError(
            f"cannot write to workdir {path} ({type(err).__name__}: "
            f"{getattr(err, 'strerror', None) or err}){hint}; pass a --workdir you can write to"
        ) from err
    return path


def _check_batch_layout(config, mesh) -> None:
    ways = data_parallel_size(mesh) * config.optimizer.grad_accum_steps
    if config.data.global_batch_size % ways:
        raise ValueError(
            f"config.data.global_batch_size={config.data.global_batch_size} must be divisible by "
            f"mesh data x fsdp ({data_parallel_size(mesh)}) x optimizer.grad_accum_steps "
            f"({config.optimizer.grad_accum_steps}) = {ways}"
        )


def _process_slot(mesh, global_batch_size: int) -> tuple[int, int]:
    """Which block of global-batch rows this process's devices hold (for the pipeline)."""
    sharding = batch_sharding(mesh)
    starts = [
        index[0].start or 0
        for index in sharding.addressable_devices_indices_map((global_batch_size,)).values()
    ]
    local = global_batch_size // jax.process_count()
    return min(starts) // local, jax.process_count()


def _data_iterator(method, config, split: str, *, train: bool, mesh, source=None):
    """Training: shuffled full global batches. Evaluation: one ordered pass, last batch partial."""
    slot, count = _process_slot(mesh, config.data.global_batch_size)
    return make_data_iterator(
        method.data_source(split) if source is None else source,
        global_batch_size=config.data.global_batch_size,
        seed=config.data.shuffle_seed,
        shuffle=train,
        num_epochs=config.data.num_epochs if train else 1,
        transforms=method.preprocess(split),
        drop_remainder=train,
        worker_count=config.data.worker_count if train else 0,
        process_index=slot,
        process_count=count,
        batch_fn=method.collate,
    )


def _check_batch_shapes(local_batch, expected, split: str) -> None:
    for key, spec in expected.items():
        if key not in local_batch:
            raise ValueError(f"{split} batch lacks key {key!r}; it has {sorted(local_batch)}")
        got = tuple(np.shape(local_batch[key]))[1:]
        if got != tuple(spec.shape[1:]):
            raise ValueError(
                f"{split} batch[{key!r}] has per-example shape {got}, the method's "
                f"example_batch says {tuple(spec.shape[1:])}"
            )


class _Preemption:
    """SIGTERM -> stop at the next step with a checkpoint. Several processes agree on the step
    through JAX's preemption sync point (its coordination service catches SIGTERM)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if jax.process_count() == 1:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class _Run:
    """What train() and evaluate() share: method, model, mesh, shardings, jitted functions."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
        self.config = config
        self.method = get_method(config.method)(config)
        self.model = self.method.build_model()
        self.mesh = mesh
        _check_batch_layout(config, self.mesh)
        trainable = self.method.trainable if overrides(self.method, "trainable") else None
        self.tx, self.schedule = make_optimizer(config.optimizer, config.train.num_steps, trainable)
        self.batch_sharding = batch_sharding(self.mesh)
        self.init_fn, self.abstract_state, self.shardings = sharded_init(
            self.method, self.model, self.tx, self.mesh, config.seed, config.data.global_batch_size
        )
        self.expected_batch = self.method.example_batch(config.data.global_batch_size)
        self._evaluators: dict[str, tuple] = {}

    def frozen(self, workdir) -> object:
        """The method's frozen variables for ``workdir`` (loaded once, then read back)."""
        return load_frozen(self.method, workdir, self.mesh, LOGICAL_AXIS_RULES, self.config.seed)

    def initial_state(self):
        """A fresh state, with ``config.init_from``'s weights when it names another run."""
        state = self.init_fn()
        if self.config.init_from.path:
            state, loaded = init_from_lib.load_into(
                self.method, state, self.config.init_from, self.shardings
            )
            logging.info("init_from %s: %d weights loaded", self.config.init_from.path, len(loaded))
            if jax.process_index() == 0:
                print(
                    f"initialised {len(loaded)} weights from {self.config.init_from.path}",
                    flush=True,
                )
        return state

    def jit_train_step(self):
        step = make_train_step(
            self.method,
            self.model,
            self.tx,
            self.schedule,
            seed=self.config.seed,
            grad_accum_steps=self.config.optimizer.grad_accum_steps,
            batch_sharding=self.batch_sharding,
        )
        return jax.jit(
            step,
            in_shardings=(self.shardings, self.batch_sharding, None),
            out_shardings=(self.shardings, None),
            donate_argnums=(0,),
        )

    def global_batch(self, local_batch):
        if jax.process_count() == 1:  # one transfer call for the whole batch
            return jax.device_put(local_batch, self.batch_sharding)
        return global_batch(local_batch, self.mesh)

    def _evaluators_for(self, split: str):
        if split not in self._evaluators:
            evaluators = list(self.method.evaluators(split))
            predicts = [
                make_predict(ev, self.model, self.shardings, self.batch_sharding)
                for ev in evaluators
            ]
            self._evaluators[split] = (evaluators, predicts)
        return self._evaluators[split]

    def _outputs(self, state, frozen, split: str, evaluators, predicts, limit: int = 0):
        """The evaluators' buffers over ``split`` (its first ``limit`` batches if > 0)."""
        c = self.config
        source = self.method.data_source(split)
        iterator = _data_iterator(self.method, c, split, train=False, mesh=self.mesh, source=source)
        local_size = c.data.global_batch_size // jax.process_count()
        batches = num_eval_batches(len(source), c.data.global_batch_size, limit)

        def padded():
            for index in range(batches):
                local = next(iterator, None)
                if index == 0 and local is not None:
                    _check_batch_shapes(local, self.expected_batch, split)
                yield pad_local_batch(local, local_size, self.expected_batch)

        return collect_outputs(
            evaluators, predicts, state, frozen, padded(), to_global=self.global_batch
        )

    def example_outputs(self, state, frozen, split: str, evaluator, predict, limit: int = 0):
        """One evaluator's per-example outputs on ``split``: its first ``limit`` examples
        (0: all), as ``{name: [N, ...]}`` NumPy arrays in the split's order."""
        batches = math.ceil(limit / self.config.data.global_batch_size) if limit else 0
        (buffer,) = self._outputs(state, frozen, split, [evaluator], [predict], batches)
        return {k: v[:limit] if limit else v for k, v in buffer.arrays().items()}

    def evaluate(self, state, frozen, split: str | None = None) -> dict[str, float]:
        """The method's evaluators over every example of ``split`` (default config.eval.split)."""
        split = split or self.config.eval.split
        evaluators, predicts = self._evaluators_for(split)
        buffers = self._outputs(
            state, frozen, split, evaluators, predicts, self.config.eval.num_batches
        )
        results = []
        for ev, predict, buffer in zip(evaluators, predicts, buffers, strict=True):
            reference = None
            if ev.reference_split:
                reference = self.example_outputs(
                    state, frozen, ev.reference_split, ev, predict, ev.reference_limit or 0
                )
            results.append(ev.compute(buffer.arrays(), reference=reference))
        count = buffers[0].count if buffers else 0
        metrics = merge_metrics(evaluators, results)
        return {**{f"eval/{k}": v for k, v in metrics.items()}, "eval/num_examples": count}


def _summarise(history: list[dict]) -> tuple[dict[str, float], list[int]]:
    """Mean of each metric over the window, and the indices of non-finite steps."""
    fetched = jax.device_get(history)
    bad = [i for i, m in enumerate(fetched) if not bool(m["finite"])]
    good = [m for m in fetched if bool(m["finite"])] or fetched
    keys = [k for k in fetched[0] if k != "finite"]
    return {k: float(np.mean([m[k] for m in good])) for k in keys}, bad


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict[str, float]:
    """Train ``config`` in ``workdir`` (resuming from its newest checkpoint); final metrics.

    Raises:
      ConfigError, WorkdirError, NonFiniteLossError (``nan_policy="stop"``).
    """
    config = validate_config(config)
    workdir = prepare_workdir(workdir)
    c = config.train
    is_main = jax.process_index() == 0
    mesh = make_mesh(config.mesh)
    # SIGTERM is caught from here on: during start-up it stops after the first step.
    with (
        jax.set_mesh(mesh),
        nn.logical_axis_rules(LOGICAL_AXIS_RULES),
        _Preemption() as preemption,
    ):
        run = _Run(config, mesh)
        writer = MetricsWriter(workdir, enabled=is_main)
        ckpt = Checkpointer(
            workdir / "checkpoints",
            keep_last=c.keep_last,
            best_metric=c.keep_best_metric,
            best_mode=c.keep_best_mode,
        )
        data = _data_iterator(run.method, config, "train", train=True, mesh=run.mesh)
        restored = ckpt.restore_latest(run.abstract_state, data)
        frozen = run.frozen(workdir)
        if restored is None:
            state, start = run.initial_state(), 0
            logging.info("no checkpoint in %s: starting from scratch", ckpt.directory)
        else:
            start, state = restored
            logging.info("resumed from step %d (%s)", start, ckpt.directory)
        writer.truncate_after(start)
        train_step = run.jit_train_step()
        if is_main:
            (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
        try:
            result = _loop(run, state, frozen, start, data, train_step, ckpt, writer, preemption)
        finally:
            ckpt.wait()
            ckpt.close()
            writer.close()
            close = getattr(data, "close", None)
            if close is not None:
                close()
    return result


def _loop(run, state, frozen, start, data, train_step, ckpt, writer, preemption):
    config = run.config
    c = config.train
    is_main = jax.process_index() == 0
    progress = Progress(start, c.num_steps, config.data.global_batch_size)
    flops = peak = None
    history: list[dict] = []
    last: dict[str, float] = {"step": start}
    last_eval: dict[str, float] = {}
    last_eval_step = -1
    last_saved = start
    preemption_stop = False
    for step in range(start, c.num_steps):
        try:
            local = next(data)
        except StopIteration:
            logging.warning("data exhausted after %d steps (data.num_epochs)", step)
            break
        if step == start:
            _check_batch_shapes(local, run.expected_batch, "train")
        batch = run.global_batch(local)
        if flops is None:  # global FLOPs of one step for MFU (only where the peak is known)
            peak = peak_flops(jax.devices()[0])
            flops = (compiled_flops(train_step.lower(state, batch, frozen)) or 0.0) if peak else 0.0
        state, metrics = train_step(state, batch, frozen)
        history.append(metrics)
        done = step + 1
        preemption_stop = preemption.should_stop(done)
        boundary = done % c.log_every == 0 or done == c.num_steps
        saving = (c.save_every and done % c.save_every == 0) or preemption_stop
        if boundary or saving or preemption_stop:
            scalars, bad = _summarise(history)
            first_bad = done - len(history) + 1 + bad[0] if bad else None
            history = []
            if first_bad is not None and c.nan_policy == "stop":
                raise NonFiniteLossError(
                    f"loss or gradient became NaN/Inf at step {first_bad} (1-based update "
                    f"count); the update was not applied. Checkpoints up to step {last_saved} "
                    f"are kept in {ckpt.directory}. Lower optimizer.learning_rate, set "
                    "optimizer.grad_clip_norm, or set train.nan_policy=skip"
                )
            rates = progress.update(done)
            mfu = flops * rates["steps_per_s"] / (peak * jax.device_count()) if flops else None
            scalars.update(rates, skipped_steps=int(state.skipped))
            if mfu is not None:
                scalars["mfu"] = mfu
            writer.write(done, scalars)
            last = {"step": done, **scalars}
            if is_main:
                print(progress.line(done, scalars["loss"], rates, mfu), flush=True)
        if c.eval_every and done % c.eval_every == 0:
            last_eval, last_eval_step = run.evaluate(state, frozen), done
            writer.write(done, last_eval)
            if is_main:
                evals = " | ".join(f"{k} {v:.5g}" for k, v in last_eval.items())
                print(f"eval at step {done}: {evals}", flush=True)
        if saving:  # ranked for keep-best only with an eval of this very step
            ckpt.save(done, state, data, metrics=last_eval if last_eval_step == done else None)
            last_saved = done
        if preemption_stop:
            if is_main:
                print(f"preempted: checkpoint saved at step {done}, exiting", flush=True)
            break
    final_step = int(state.step)
    if history and c.nan_policy == "stop" and _summarise(history)[1]:  # data ran out mid-window
        raise NonFiniteLossError(f"loss or gradient became NaN/Inf after step {last_saved}")
    if final_step != last_saved:
        metrics = last_eval if last_eval_step == final_step else None
        ckpt.save(final_step, state, data, metrics=metrics)
    writer.flush()
    return {**last, **last_eval, "step": final_step, "preempted": preemption_stop}


class Restored(NamedTuple):
    """The newest readable checkpoint of a workdir, with what is needed to use it."""

    method: object  # the emojax.models.base.Method of config.method
    model: nn.Module
    step: int
    state: object  # TrainState, sharded over the config's mesh
    frozen: object = None  # the method's frozen variables ({} when it has none)

    def variables(self) -> dict:
        """What the method's functions take: params, collections, "frozen"/"extra"."""
        return loss_variables(
            self.state.params, self.state.model_state, self.frozen or {}, self.state.extra
        )


def _restore_newest(
    config, workdir: str | os.PathLike, mesh, step: int | None = None
) -> tuple[_Run, int, object]:
    """(run, step, state) of the newest readable checkpoint (or of ``step``, which must be
    kept); call inside the mesh context."""
    workdir = as_path(workdir)
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no checkpoints in {directory}: train first with "
            f"`emojax train --config=... --workdir={workdir}`"
        )
    run = _Run(config, mesh)
    ckpt = Checkpointer(directory, keep_last=config.train.keep_last)
    try:
        if step is None:
            restored = ckpt.restore_latest(run.abstract_state)
        elif step not in (kept := ckpt.all_steps()):
            raise FileNotFoundError(f"no checkpoint of step {step} in {directory} (kept: {kept})")
        else:
            restored = step, ckpt.restore(step, run.abstract_state)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no readable checkpoint in {directory}")
    step, state = restored
    return run, step, state


def restore(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Restored:
    """The newest readable checkpoint in ``workdir``, restored onto ``config.mesh``."""
    config = validate_config(config)
    mesh = make_mesh(config.mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        run, step, state = _restore_newest(config, workdir, mesh)
        frozen = run.frozen(as_path(workdir))
    return Restored(run.method, run.model, step, state, frozen)


def evaluate(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, step: int | None = None
) -> dict[str, float]:
    """Metrics of the newest readable checkpoint in ``workdir`` (or of the kept ``step``, e.g.
    the best-validation one) on ``config.eval.split``."""
    config = validate_config(config)
    mesh = make_mesh(config.mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        run, step, state = _restore_newest(config, workdir, mesh, step)
        start = time.perf_counter()
        metrics = run.evaluate(state, run.frozen(as_path(workdir)))
    metrics.update(step=step, eval_seconds=time.perf_counter() - start)
    return metrics


class PreemptedError(RuntimeError):
    """:func:`train_to_end`: the run stopped at a preemption (SIGTERM) before its last step."""


def train_to_end(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
    """:func:`train`, raising :class:`PreemptedError` when it stopped at a preemption: for
    drivers that chain runs (quickstart stages, results tables), whose next stage or evaluation
    must not start from an unfinished run. The checkpoint is saved; the same command resumes."""
    result = train(config, workdir)
    if result.get("preempted"):
        raise PreemptedError(
            f"training in {os.fspath(workdir)} was preempted (SIGTERM) at step {result['step']}; "
            "its checkpoint is saved: run the same command again to resume (nothing after this "
            "run was started)"
        )
    return result


def evaluate_split(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    split: str = "test",
    step: int | None = None,
) -> dict[str, float]:
    """:func:`evaluate` on EVERY example of ``split`` (``eval.num_batches`` = 0), keys without
    the ``eval/`` prefix: the whole-split score of a finished run (reports, results tables), of
    its newest checkpoint or of the kept ``step``."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.eval.split = split
        config.eval.num_batches = 0
    return {k.removeprefix("eval/"): v for k, v in evaluate(config, workdir, step).items()}


def predict_splits(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    evaluator,
    splits: dict[str, int],
) -> tuple[Restored, dict[str, dict[str, np.ndarray]]]:
    """The newest checkpoint in ``workdir`` and ``evaluator``'s per-example outputs on each
    split (``{split: limit}``: its first ``limit`` examples, 0 = all), with the same padded,
    sharded whole-split loop as :func:`evaluate` (for reports that need the outputs themselves,
    e.g. plots, not only the metrics)."""
    config = validate_config(config)
    mesh = make_mesh(config.mesh)
    outputs = {}
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        run, step, state = _restore_newest(config, workdir, mesh)
        frozen = run.frozen(as_path(workdir))
        predict = make_predict(evaluator, run.model, run.shardings, run.batch_sharding)
        for split, limit in splits.items():
            outputs[split] = run.example_outputs(state, frozen, split, evaluator, predict, limit)
    return Restored(run.method, run.model, step, state, frozen), outputs
