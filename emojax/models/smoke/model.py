"""The smoke method's network and data: a small two-tower model on generated paired data.

The Method (``two_tower``, alias ``smoke``) is in ``method.py``; it is used by the trainer's tests
and CI (``configs/smoke.py``). Two modalities ``a`` and ``b`` are noisy linear views of a shared
latent ``z``; each tower is an MLP and the towers are trained with the CLIP loss
(``emojax.losses.clip_loss``) so matching pairs embed close together.

Data rule (deterministic, seeded by ``data.data_seed`` and the split)::

    z_i ~ N(0, I_latent);  a_i = A z_i + noise_std * e_a;  b_i = B z_i + noise_std * e_b
    A: [dim_a, latent], B: [dim_b, latent] fixed Gaussian mixing matrices (same seed)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import CLIP_INIT_LOG_SCALE
from emojax.models.base import Batch


class PairedGaussianSource:
    """Random-access source of ``{"a": [dim_a], "b": [dim_b]}`` float32 examples.

    The whole split is generated at construction with one vectorised draw (a few MB at most
    for smoke sizes), so ``__getitem__`` is an index and the pipeline is never the bottleneck.
    """

    def __init__(
        self,
        size: int,
        dim_a: int,
        dim_b: int,
        latent: int,
        noise_std: float,
        seed: int,
        split: int,
    ):
        if min(size, dim_a, dim_b, latent) <= 0:
            raise ValueError(
                f"size, dim_a, dim_b and latent must be positive, got {size, dim_a, dim_b, latent}"
            )
        # The mixing matrices depend on the seed only, so every split poses the same task.
        mixing = np.random.default_rng([seed, 0])
        mix_a = mixing.standard_normal((dim_a, latent)) / np.sqrt(latent)
        mix_b = mixing.standard_normal((dim_b, latent)) / np.sqrt(latent)
        rng = np.random.default_rng([seed, 1, split])
        z = rng.standard_normal((size, latent))
        self.a = (z @ mix_a.T + noise_std * rng.standard_normal((size, dim_a))).astype(np.float32)
        self.b = (z @ mix_b.T + noise_std * rng.standard_normal((size, dim_b))).astype(np.float32)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self.a):
            raise IndexError(f"example {index} out of range [0, {len(self.a)})")
        return {"a": self.a[index].copy(), "b": self.b[index].copy()}


def _dense(features: int, axes: tuple[str, str], dtype, name: str) -> nn.Dense:
    """Dense layer whose kernel [in, out] and bias [out] carry logical axis names."""
    return nn.Dense(
        features,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), axes[1:]),
        name=name,
    )


class Tower(nn.Module):
    """MLP tower: x [batch, in] -> [batch, embed_dim] (kernels sharded embed x mlp)."""

    hidden_dim: int
    embed_dim: int
    num_layers: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.with_logical_constraint(x.astype(self.dtype), ("batch", None))
        for i in range(self.num_layers - 1):
            x = nn.gelu(_dense(self.hidden_dim, ("embed", "mlp"), self.dtype, f"hidden_{i}")(x))
            x = nn.with_logical_constraint(x, ("batch", None))
        return _dense(self.embed_dim, ("mlp", "embed"), self.dtype, "out")(x)


class TwoTowerModel(nn.Module):
    """Two towers and a learnable log temperature. batch {"a": [B, dim_a], "b": [B, dim_b]}."""

    hidden_dim: int
    embed_dim: int
    num_layers: int = 2
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, batch: Batch, train: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
        tower = dict(hidden_dim=self.hidden_dim, embed_dim=self.embed_dim, dtype=self.dtype)
        za = Tower(num_layers=self.num_layers, name="tower_a", **tower)(batch["a"])
        zb = Tower(num_layers=self.num_layers, name="tower_b", **tower)(batch["b"])
        log_scale = self.param(
            "log_scale",
            nn.with_logical_partitioning(nn.initializers.constant(CLIP_INIT_LOG_SCALE), ()),
            (),
            jnp.float32,
        )
        return za.astype(jnp.float32), zb.astype(jnp.float32), log_scale
