"""Accelerator benchmark: MAE train step MFU, attention memory at L = 4096, entmax_bisect bandwidth.

    python -m benchmarks.accelerator [--quick] [--json PATH]

Three measurements, meant for a GPU / TPU (the full sizes do not belong on a CPU):

1. **MAE train step.** A ViT-B/16 encoder (``emojax.nn.ViT``) over the visible 25 % of the
   patches of 224 px images, plus a small decoder (MAE's: 512 wide, 8 blocks, 16 heads) that
   predicts the pixels of the masked patches; MSE on the masked patches
   (``emojax.losses.mae_loss``), optax ``adamw``, bfloat16 compute with float32 parameters, one
   ``jax.jit`` with the parameters and optimizer state donated. Reported: the step time and
   MFU = FLOPs of one step (XLA's ``cost_analysis()`` of the compiled step) x steps/s / the
   chip's peak (``emojax.train.observe.peak_flops``; "n/a" where the chip is unknown, e.g. CPU).
2. **Softmax attention memory.** ``jax.nn.dot_product_attention`` forward+backward at sequence
   length 4096 (batch 1, 12 heads x 64; bfloat16 on accelerators, float32 on CPU): the compiled
   program's ``memory_analysis()`` temp bytes, and whether an L x L residual is kept (temp bytes
   >= heads * L * L * itemsize, the size of one attention matrix). Per implementation ("auto" =
   ``implementation=None``, "xla", and "cudnn" on GPU), next to a naive einsum-softmax attention.
3. **entmax_bisect.** ``emojax.ops.entmax_bisect`` (alpha 1.5) forward and forward+backward at
   4096 x 32000 float32 (a vocabulary-sized row), as a multiple of one read+write pass over the
   input (jitted ``x * 2.0``, the floor any elementwise op pays).

``--quick`` shrinks everything (a 1-layer ViT on 32 px images, L = 256, 256 x 1000) so that it
runs on a CPU in well under a minute: a smoke test of the code path, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import machine, time_ms
from emojax import ops
from emojax.losses import mae_loss, patchify
from emojax.nn import TransformerEncoder
from emojax.nn.vit import ViT, ViTConfig, gather_tokens
from emojax.train.observe import compiled_flops, peak_flops

TITLE = "accelerator: MAE step MFU, attention memory, entmax_bisect"
MiB = 2**20


# --------------------------------------------------------------------------- 1. MAE train step


@dataclass(frozen=True)
class MAESize:
    vit: ViTConfig
    decoder_dim: int
    decoder_depth: int
    decoder_heads: int
    batch: int
    mask_ratio: float = 0.75

    @property
    def num_keep(self) -> int:
        return int(self.vit.num_patches * (1 - self.mask_ratio))


def mae_size(quick: bool) -> MAESize:
    if quick:
        vit = ViTConfig(
            image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=128, layer_norm_eps=1e-6,
        )  # fmt: skip
        return MAESize(vit, decoder_dim=32, decoder_depth=1, decoder_heads=2, batch=4)
    vit = ViTConfig(  # ViT-B/16
        image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, layer_norm_eps=1e-6,
    )  # fmt: skip
    return MAESize(vit, decoder_dim=512, decoder_depth=8, decoder_heads=16, batch=128)


class MAE(nn.Module):
    """ViT encoder over the kept patches + MAE decoder -> predicted pixels of every patch.

    ``images: [B, H, W, C]``, ``keep: [B, k]`` kept patch ids, ``restore: [B, N]`` the inverse
    of the shuffle that put the kept patches first. Returns ``[B, N, patch * patch * C]``.
    """

    size: MAESize
    dtype: Any = jnp.bfloat16

    @nn.compact
    def __call__(self, images, keep, restore):
        s, c = self.size, self.size.vit
        latent = ViT(c, dtype=self.dtype, name="encoder")(images, keep_indices=keep)
        x = nn.Dense(s.decoder_dim, dtype=self.dtype, name="decoder_embed")(latent)
        b, n = restore.shape
        mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, s.decoder_dim))
        hidden = jnp.broadcast_to(mask_token.astype(x.dtype), (b, n - keep.shape[1], s.decoder_dim))
        tokens = gather_tokens(jnp.concatenate([x[:, 1:], hidden], axis=1), restore)
        tokens = jnp.concatenate([x[:, :1], tokens], axis=1)  # the class token goes first again
        pos = self.param("decoder_pos", nn.initializers.normal(0.02), (1, n + 1, s.decoder_dim))
        h = TransformerEncoder(
            s.decoder_depth, s.decoder_heads, 4 * s.decoder_dim, layer_norm_eps=1e-6,
            dtype=self.dtype, name="decoder",
        )(tokens + pos.astype(tokens.dtype))  # fmt: skip
        h = nn.LayerNorm(1e-6, dtype=self.dtype, name="decoder_norm")(h)
        out = c.patch_size**2 * c.num_channels
        return nn.Dense(out, dtype=self.dtype, name="decoder_pred")(h[:, 1:])


def random_masking(key, batch: int, num_patches: int, num_keep: int):
    """MAE's per-image random shuffle -> (keep [B, k], restore [B, N], mask [B, N] 1 = masked)."""
    shuffle = jnp.argsort(jax.random.uniform(key, (batch, num_patches)), axis=1)
    restore = jnp.argsort(shuffle, axis=1)
    mask = jnp.ones((batch, num_patches), jnp.float32).at[:, :num_keep].set(0.0)
    return shuffle[:, :num_keep], restore, jnp.take_along_axis(mask, restore, axis=1)


def mae_row(quick: bool, repeats: int) -> dict:
    size = mae_size(quick)
    c = size.vit
    model = MAE(size, dtype=jnp.bfloat16)
    tx = optax.adamw(1.5e-4, weight_decay=0.05)
    images = jax.random.normal(jax.random.key(1), (size.batch, c.image_size, c.image_size, 3))
    keep, restore, _ = random_masking(jax.random.key(2), size.batch, c.num_patches, size.num_keep)
    params = jax.jit(lambda k: nn.meta.unbox(model.init(k, images, keep, restore))["params"])(
        jax.random.key(0)
    )
    opt_state = jax.jit(tx.init)(params)

    def train_step(params, opt_state, images, key):
        key, sub = jax.random.split(key)
        keep, restore, mask = random_masking(sub, size.batch, c.num_patches, size.num_keep)

        def loss_fn(p):
            pred = model.apply({"params": p}, images, keep, restore)
            return mae_loss(pred, patchify(images, c.patch_size), mask)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    key = jax.random.key(3)
    step = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, images, key)
    step = step.compile()
    flops = compiled_flops(step)
    state = {"params": params, "opt": opt_state, "key": key}

    def run():
        state["params"], state["opt"], state["key"], loss = step(
            state["params"], state["opt"], images, state["key"]
        )
        return loss

    ms = time_ms(run, repeats=repeats, warmup=2)
    loss = float(run())
    device = jax.devices()[0]
    peak = peak_flops(device)
    mfu = None if (flops is None or peak is None) else flops * (1e3 / ms) / peak
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    name = (
        f"MAE ViT-B/16 train step bf16 b={size.batch}"
        if not quick
        else f"MAE tiny ViT ({c.num_hidden_layers}x{c.hidden_size}) step bf16 b={size.batch}"
    )
    return {
        "name": name,
        "ms": ms,
        "batch": size.batch,
        "image_size": c.image_size,
        "visible_patches": size.num_keep,
        "num_patches": c.num_patches,
        "params_m": n_params / 1e6,
        "flops_per_step": flops,
        "tflops_per_s": None if flops is None else flops * (1e3 / ms) / 1e12,
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": mfu,
        "loss": loss,
        "finite": math.isfinite(loss),
    }


# ---------------------------------------------------------------------- 2. attention memory


def naive_attention(q, k, v):
    """Materialised softmax attention, [B, L, H, D] layout (the reference)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * scale
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def _fwd_bwd(attn: Callable):
    def loss(q, k, v, g):
        return jnp.sum(attn(q, k, v).astype(jnp.float32) * g)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def attention_rows(length: int, repeats: int, heads: int = 12, head_dim: int = 64) -> list[dict]:
    platform = jax.devices()[0].platform
    dtype = jnp.float32 if platform == "cpu" else jnp.bfloat16
    itemsize = jnp.dtype(dtype).itemsize
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(kk, (1, length, heads, head_dim), dtype) for kk in keys[:3])
    g = jax.random.normal(keys[3], (1, length, heads, head_dim), jnp.float32)
    lxl = heads * length * length * itemsize
    impls: list[tuple[str, Callable]] = [
        ("auto", lambda q, k, v: jax.nn.dot_product_attention(q, k, v)),
        ("xla", lambda q, k, v: jax.nn.dot_product_attention(q, k, v, implementation="xla")),
    ]
    if platform == "gpu":
        impls.append(
            ("cudnn", lambda q, k, v: jax.nn.dot_product_attention(q, k, v, implementation="cudnn"))
        )
    impls.append(("naive einsum-softmax", naive_attention))
    rows = []
    for label, attn in impls:
        name = f"attention fwd+bwd L={length} {label}"
        row = {"name": name, "impl": label, "length": length, "dtype": jnp.dtype(dtype).name}
        try:
            compiled = _fwd_bwd(attn).lower(q, k, v, g).compile()
        except Exception as err:  # noqa: BLE001 - e.g. cudnn unavailable: report, go on
            rows.append(row | {"error": f"{type(err).__name__}: {str(err).splitlines()[0]}"})
            continue
        stats = compiled.memory_analysis()
        temp = None if stats is None else int(stats.temp_size_in_bytes)
        ms = time_ms(lambda c=compiled: c(q, k, v, g), repeats=repeats, warmup=1)
        rows.append(
            row
            | {
                "ms": ms,
                "temp_bytes": temp,
                "lxl_bytes": lxl,
                "keeps_lxl_residual": None if temp is None else temp >= lxl,
            }
        )
    return rows


# ------------------------------------------------------------------------- 3. entmax_bisect


def entmax_rows(rows_: int, cols: int, repeats: int) -> list[dict]:
    x = jax.random.normal(jax.random.key(0), (rows_, cols), jnp.float32)
    g = jax.random.normal(jax.random.key(1), (rows_, cols), jnp.float32)
    read_write = jax.jit(lambda x: x * 2.0)
    forward = jax.jit(lambda x: ops.entmax_bisect(x, 1.5))
    fwd_bwd = jax.jit(jax.grad(lambda x, g: jnp.sum(ops.entmax_bisect(x, 1.5) * g)))
    pass_ms = time_ms(lambda: read_write(x), repeats=repeats, warmup=1)
    gbps = 2 * x.size * x.dtype.itemsize / (pass_ms * 1e-3) / 1e9
    shape = f"{rows_}x{cols} f32"
    out = [{"name": f"read+write pass x*2.0 {shape}", "ms": pass_ms, "gb_per_s": gbps}]
    for label, fn in (("fwd", lambda: forward(x)), ("fwd+bwd", lambda: fwd_bwd(x, g))):
        ms = time_ms(fn, repeats=repeats, warmup=1)
        out.append(
            {"name": f"entmax_bisect {label} {shape}", "ms": ms, "x_read_write_pass": ms / pass_ms}
        )
    return out


# ------------------------------------------------------------------------------------ output


def _fmt_bytes(n) -> str:
    return "n/a" if n is None else f"{n / MiB:.1f} MiB"


def print_report(mae: dict, attention: list[dict], entmax: list[dict]) -> None:
    print(f"\n{TITLE}  ({machine()}; {jax.devices()[0].device_kind})")
    header = f"{'case':<52} {'ms':>10}  notes"
    print(header)
    print("-" * (len(header) + 40))
    mfu = "n/a" if mae["mfu"] is None else f"{100 * mae['mfu']:.1f}%"
    tflops = "n/a" if mae["tflops_per_s"] is None else f"{mae['tflops_per_s']:.3g}"
    flops = "n/a" if mae["flops_per_step"] is None else f"{mae['flops_per_step'] / 1e9:.4g}"
    print(
        f"{mae['name']:<52} {mae['ms']:10.2f}  MFU {mfu} ({tflops} TFLOP/s achieved, "
        f"{flops} GFLOP/step, {mae['params_m']:.3g} M params, loss {mae['loss']:.4f})"
    )
    for row in attention:
        if "error" in row:
            print(f"{row['name']:<52} {'-':>10}  {row['error'][:80]}")
            continue
        flag = {True: "keeps LxL residual", False: "no LxL residual", None: "n/a"}[
            row["keeps_lxl_residual"]
        ]
        print(
            f"{row['name']:<52} {row['ms']:10.2f}  temp {_fmt_bytes(row['temp_bytes'])} "
            f"(one LxL: {_fmt_bytes(row['lxl_bytes'])}, {row['dtype']}): {flag}"
        )
    for row in entmax:
        note = (
            f"{row['gb_per_s']:.1f} GB/s"
            if "gb_per_s" in row
            else f"{row['x_read_write_pass']:.1f}x one read+write pass"
        )
        print(f"{row['name']:<52} {row['ms']:10.2f}  {note}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke test")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = 3 if quick else 10
    mae = mae_row(quick, repeats)
    attention = attention_rows(256 if quick else 4096, repeats)
    entmax = entmax_rows(256 if quick else 4096, 1000 if quick else 32000, repeats)
    print_report(mae, attention, entmax)
    device = jax.devices()[0]
    payload = {
        "benchmark": TITLE,
        "machine": machine(),
        "device_kind": device.device_kind,
        "platform": device.platform,
        "quick": quick,
        "mae": mae,
        "attention": attention,
        "entmax": entmax,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return payload


if __name__ == "__main__":
    main()
