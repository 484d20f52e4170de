"""The small interface every method gives the trainer.

A method is one file in ``emojax/models/``; it subclasses :class:`Method` and is registered
by name in ``emojax.models.REGISTRY``. The trainer knows nothing else about it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import ml_collections

Batch = Mapping[str, jax.Array]
Variables = Mapping[str, Any]  # {"params": ..., optional "batch_stats": ...}
Metrics = dict[str, jax.Array]


class Method(abc.ABC):
    """What a method provides: its Flax module, its loss, its eval metrics and its data.

    All array functions are pure and traced under ``jax.jit`` by the trainer.
    """

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

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
    ) -> tuple[jax.Array, tuple[Metrics, Variables]]:
        """Scalar float32 loss, (metrics, updated non-param collections e.g. batch_stats)."""

    def eval_metrics(self, model: nn.Module, variables: Variables, batch: Batch) -> Metrics:
        """Per-batch eval metrics (means over the batch); default: the loss's metrics."""
        loss, (metrics, _) = self.loss(model, variables, batch, jax.random.key(0), train=False)
        return {"loss": loss, **metrics}

    @abc.abstractmethod
    def data_source(self, split: str):
        """A grain random-access source (``len`` + ``__getitem__``) of examples for ``split``."""

    def preprocess(self, split: str) -> list:
        """grain per-example transforms applied after the source (default: none)."""
        return []
