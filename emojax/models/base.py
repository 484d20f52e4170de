"""The interface every method gives the trainer (Method interface v2).

A method is one package ``emojax/models/<method>/`` whose ``method.py`` subclasses
:class:`Method`. The trainer knows nothing else about it. Only ``build_model``,
``example_batch``, ``loss`` and ``data_source`` are required; everything else has a default, so
a simple method stays simple:

==========================  =========================================================
hook                        default
==========================  =========================================================
``init_variables``          ``model.init`` on a batch of zeros
``init_extra_state``        ``{}``: no state outside the gradient
``update_extra_state``      returns the state unchanged
``init_frozen``             ``{}``: no frozen variables
``trainable``               every parameter is trained
``init_from_surgery``       loaded weights unchanged
``evaluators``              one :class:`MeanEvaluator` over ``eval_metrics``
``collate``                 ``None``: grain stacks examples of equal shapes
``rng_streams``             ``("dropout",)``
``prepare_data``            nothing to build
==========================  =========================================================

What the loss sees: ``variables = {"params": ..., <mutable collections>, "frozen": ...,
"extra": ...}``, where ``frozen`` and ``extra`` are present only when the method has them.
Flax ignores collections that no module declares, so ``model.apply(variables, ...)`` works.
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emojax.metrics import ExampleBuffer

Batch = Mapping[str, jax.Array]
Variables = Mapping[str, Any]  # {"params": ..., optional "batch_stats", "frozen", "extra"}
Metrics = dict[str, jax.Array]
# A reader the trainer hands to ``init_frozen``: (workdir or checkpoint, subtree "params/x")
# -> nested dict of NumPy arrays. Methods get it injected so they never import the trainer.
CheckpointReader = Callable[[str, str], dict]


def named_rngs(rng: jax.Array, names: Sequence[str]) -> dict[str, jax.Array]:
    """One independent key per stream name, derived from the name (not its position), so that
    adding a stream never changes the others' random numbers."""
    return {name: jax.random.fold_in(rng, zlib.crc32(name.encode()) & 0x7FFFFFFF) for name in names}


def overrides(method: Method, hook: str) -> bool:
    """Whether ``method``'s class replaces the default ``Method.<hook>`` (the trainer skips the
    work a default implies, e.g. no optimizer mask, no frozen-variable files)."""
    return getattr(type(method), hook) is not getattr(Method, hook)


class Evaluator(abc.ABC):
    """One evaluation over a whole split.

    ``predict`` runs jitted on padded global batches and returns per-example outputs
    ``[B, ...]``; the trainer keeps the valid rows of every batch (no example dropped, also with
    several devices and processes) and calls ``compute`` once with one row per example of the
    split, in order. Metric names are returned without the ``eval/`` prefix the trainer adds.
    """

    name: str = "eval"
    #: a split whose outputs ``compute`` also needs (e.g. class prototypes or a kNN index built
    #: from training examples), or None; at most ``reference_limit`` examples of it are used.
    reference_split: str | None = None
    reference_limit: int | None = None

    @abc.abstractmethod
    def predict(self, model: nn.Module, variables: Variables, batch: Batch) -> dict[str, jax.Array]:
        """Per-example outputs ``{name: [B, ...]}`` of one padded batch (pure, jitted)."""

    def new_buffer(self) -> ExampleBuffer:
        """The host-side accumulator; override for streaming statistics of huge splits."""
        return ExampleBuffer()

    @abc.abstractmethod
    def compute(self, outputs: dict[str, np.ndarray], reference=None) -> dict[str, float]:
        """Metrics from the whole split's outputs ``{name: [N, ...]}`` (host side, NumPy);
        ``reference``: the same outputs of ``reference_split`` when it is set."""


class MeanEvaluator(Evaluator):
    """Means over the split of a method's per-example ``eval_metrics``.

    ``eval_metrics`` should return ``[B]`` arrays (one value per example); a scalar is taken as
    the batch's mean and weighted by the batch's valid rows (exact only when padding rows do not
    change it, e.g. not for in-batch contrastive losses: those methods give per-example values).
    """

    def __init__(self, method: Method):
        self.method = method
        self.name = "mean"

    def predict(self, model, variables, batch):
        metrics = self.method.eval_metrics(model, variables, batch)
        size = jax.tree.leaves(batch)[0].shape[0]
        return {
            k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (size,))
            if jnp.ndim(v) == 0
            else jnp.asarray(v, jnp.float32)
            for k, v in metrics.items()
        }

    def compute(self, outputs, reference=None):
        return {k: float(np.mean(v)) for k, v in outputs.items()}


class Method(abc.ABC):
    """What a method provides: its Flax module, its loss, its evaluators and its data.

    All array functions are pure and traced under ``jax.jit`` by the trainer.
    """

    #: named PRNG streams derived from the step key (see :meth:`rngs`).
    rng_streams: tuple[str, ...] = ("dropout",)

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    # -- model and loss ------------------------------------------------------------------------

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The Flax Linen module (called once)."""

    @abc.abstractmethod
    def example_batch(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes/dtypes of one global batch: used to initialise and to shard inputs."""

    def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> Variables:
        """Initial variables from a batch of zeros; override for unusual signatures."""
        params_rng, dropout_rng = jax.random.split(rng)
        return model.init({"params": params_rng, "dropout": dropout_rng}, batch, train=False)

    @abc.abstractmethod
    def loss(
        self, model: nn.Module, variables: Variables, batch: Batch, rng: jax.Array, *, train: bool
    ) -> tuple[jax.Array, tuple]:
        """Scalar float32 loss and ``(metrics, updated mutable collections)``.

        A method with extra state returns ``(metrics, collections, outputs)``: ``outputs``
        (e.g. this step's detached features) go to :meth:`update_extra_state`.
        """

    def rngs(self, rng: jax.Array) -> dict[str, jax.Array]:
        """This step's named streams (``dropout``, ``masking``, ``augment`` ...) from ``rng``."""
        return named_rngs(rng, self.rng_streams)

    # -- state outside the gradient --------------------------------------------------------------

    def init_extra_state(self, rng: jax.Array) -> Any:
        """State updated outside the gradient (a k-means codebook, a feature queue, EMA weights).

        Leaves may be ``nn.with_logical_partitioning``-style boxes
        (``nn.LogicallyPartitioned``) to shard them by logical axes; others are replicated.
        Checkpointed and restored with the train state.
        """
        del rng
        return {}

    def update_extra_state(self, extra: Any, outputs: Any, *, step: jax.Array, rng: jax.Array):
        """The new extra state after an optimizer step (pure, inside the jitted step).

        ``outputs``: what :meth:`loss` returned third; with gradient accumulation this is
        called once per micro-batch, in order. Skipped (state kept) when the step is not finite.
        """
        del outputs, step, rng
        return extra

    # -- frozen variables and trainable parameters ----------------------------------------------

    def init_frozen(self, rng: jax.Array, read_checkpoint: CheckpointReader) -> Any:
        """Frozen variables (a teacher, a frozen text tower): loaded once per run from a file, a
        converted checkpoint or another run (``read_checkpoint(path, "params/teacher")``).

        They reach the loss as ``variables["frozen"]``, get no gradient, no optimizer state and
        no weight decay, and are saved once per workdir (``WORKDIR/frozen``), not in every
        checkpoint; a resumed run reads them back from there. Leaves may be logical boxes.
        """
        del rng, read_checkpoint
        return {}

    def trainable(self, params: Any) -> Any:
        """A bool pytree like ``params``: False leaves stay at their value (optax
        ``set_to_zero``, no optimizer state, no weight decay); default: all True."""
        return jax.tree.map(lambda _: True, params)

    def init_from_surgery(self, loaded: dict, target: dict) -> dict:
        """Parameter surgery for ``config.init_from``: adapt ``loaded`` (nested NumPy dict of
        the named subtrees of another run) to ``target`` (the abstract fresh state, same nesting)
        — e.g. resize position embeddings or drop a head. Default: unchanged."""
        del target
        return loaded

    # -- evaluation ------------------------------------------------------------------------------

    def eval_metrics(self, model: nn.Module, variables: Variables, batch: Batch) -> Metrics:
        """Per-example (``[B]``) or per-batch eval metrics; default: the loss's metrics."""
        loss, aux = self.loss(model, variables, batch, jax.random.key(0), train=False)
        return {"loss": loss, **aux[0]}

    def evaluators(self, split: str) -> list[Evaluator]:
        """The evaluators run on ``split`` (every example counted); default: the means of
        :meth:`eval_metrics`."""
        del split
        return [MeanEvaluator(self)]

    # -- data ------------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Build the method's built-in dataset if it is missing (``emojax quickstart``)."""
        return None

    @abc.abstractmethod
    def data_source(self, split: str):
        """A grain random-access source (``len`` + ``__getitem__``) of examples for ``split``."""

    def preprocess(self, split: str) -> list:
        """grain per-example transforms applied after the source (default: none)."""
        del split
        return []

    #: ``collate(examples: list[dict]) -> dict of arrays`` with fixed shapes (padding to
    #: buckets, masks) for variable-size examples such as dialogue graphs; ``None``: stack.
    collate: Callable[[Sequence[dict]], dict] | None = None
