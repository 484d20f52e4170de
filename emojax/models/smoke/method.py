"""The smoke method ``two_tower`` (alias ``smoke``): CLIP loss between two MLP towers.

Model and generated data are in ``model.py``; used by the trainer's tests and CI
(``configs/smoke.py``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import clip_loss, l2_normalize
from emojax.metrics import retrieval_metrics
from emojax.models.base import Batch, Evaluator, Method, Metrics, Variables
from emojax.models.smoke.model import PairedGaussianSource, TwoTowerModel


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


class RetrievalEvaluator(Evaluator):
    """a -> b retrieval over the whole split (R@1/5/10, median rank) and the CLIP loss of the
    whole split (every other example a negative, at the learned temperature)."""

    name = "retrieval"

    def predict(self, model, variables, batch):
        za, zb, log_scale = model.apply(variables, batch, train=False)
        size = za.shape[0]
        return {
            "a": l2_normalize(za).astype(jnp.float32),
            "b": l2_normalize(zb).astype(jnp.float32),
            "log_scale": jnp.broadcast_to(log_scale.astype(jnp.float32), (size,)),
        }

    def compute(self, outputs, reference=None):
        a, b = outputs["a"].astype(np.float64), outputs["b"].astype(np.float64)
        logits = np.exp(outputs["log_scale"][0]) * a @ b.T
        diagonal = np.arange(len(a))
        loss = -0.5 * (
            _log_softmax(logits, 1)[diagonal, diagonal].mean()
            + _log_softmax(logits, 0)[diagonal, diagonal].mean()
        )
        return {"loss": float(loss), **retrieval_metrics(a, b, prefix="a_to_b_")}


class TwoTower(Method):
    """Method ``two_tower``: CLIP loss between the towers; evaluated by whole-split retrieval."""

    def build_model(self) -> nn.Module:
        m = self.config.model
        return TwoTowerModel(
            hidden_dim=m.hidden_dim,
            embed_dim=m.embed_dim,
            num_layers=m.num_layers,
            dtype=jnp.dtype(self.config.train.compute_dtype),
        )

    def example_batch(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
        d = self.config.data
        return {
            "a": jax.ShapeDtypeStruct((batch_size, d.dim_a), jnp.float32),
            "b": jax.ShapeDtypeStruct((batch_size, d.dim_b), jnp.float32),
        }

    def loss(
        self, model: nn.Module, variables: Variables, batch: Batch, rng: jax.Array, *, train: bool
    ) -> tuple[jax.Array, tuple[Metrics, Variables]]:
        za, zb, log_scale = model.apply(variables, batch, train=train, rngs={"dropout": rng})
        loss = clip_loss(za, zb, log_scale)
        return loss, ({"scale": jnp.exp(log_scale)}, {})

    def evaluators(self, split: str) -> list[Evaluator]:
        return [RetrievalEvaluator()]

    def data_source(self, split: str) -> PairedGaussianSource:
        d = self.config.data
        sizes = {"train": d.num_train, "validation": d.num_eval, "test": d.num_eval}
        if split not in sizes:
            raise ValueError(f"two_tower has splits {sorted(sizes)}, got eval.split={split!r}")
        split_id = ("train", "validation", "test").index(split)
        return PairedGaussianSource(
            sizes[split], d.dim_a, d.dim_b, d.latent_dim, d.noise_std, d.data_seed, split_id
        )
