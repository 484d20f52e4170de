"""The smoke method ``two_tower`` (alias ``smoke``): CLIP loss between two MLP towers.

Model and generated data are in ``model.py``; used by the trainer's tests and CI
(``configs/smoke.py``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.losses import clip_loss, l2_normalize
from emojax.models.base import Batch, Method, Metrics, Variables
from emojax.models.smoke.model import PairedGaussianSource, TwoTowerModel


class TwoTower(Method):
    """Method ``two_tower``: CLIP loss between the towers; eval adds a->b top-1 retrieval."""

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

    def eval_metrics(self, model: nn.Module, variables: Variables, batch: Batch) -> Metrics:
        za, zb, log_scale = model.apply(variables, batch, train=False)
        similarity = l2_normalize(za) @ l2_normalize(zb).T
        hits = jnp.argmax(similarity, axis=1) == jnp.arange(za.shape[0])
        return {"loss": clip_loss(za, zb, log_scale), "top1_a_to_b": jnp.mean(hits)}

    def data_source(self, split: str) -> PairedGaussianSource:
        d = self.config.data
        sizes = {"train": d.num_train, "validation": d.num_eval, "test": d.num_eval}
        if split not in sizes:
            raise ValueError(f"two_tower has splits {sorted(sizes)}, got eval.split={split!r}")
        split_id = ("train", "validation", "test").index(split)
        return PairedGaussianSource(
            sizes[split], d.dim_a, d.dim_b, d.latent_dim, d.noise_std, d.data_seed, split_id
        )
