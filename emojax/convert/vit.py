"""Hugging Face ``ViTModel`` -> :class:`emojax.nn.ViT`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.convert.core import (
    Rule,
    block_rules,
    conv_rules,
    linear_rules,
    norm_rules,
    state_dict_to_flax,
    unbox,
)
from emojax.nn.vit import ViT, ViTConfig

# transformers >= 5 names (``layers.{i}``) and the hub/legacy names (``encoder.layer.{i}``)
VIT_BLOCK = {
    "query": "attention.q_proj",
    "key": "attention.k_proj",
    "value": "attention.v_proj",
    "out": "attention.o_proj",
    "norm1": "layernorm_before",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
    "norm2": "layernorm_after",
}
VIT_BLOCK_LEGACY = {
    "query": "attention.attention.query",
    "key": "attention.attention.key",
    "value": "attention.attention.value",
    "out": "attention.output.dense",
    "norm1": "layernorm_before",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "norm2": "layernorm_after",
}


def vit_rules(
    config: ViTConfig, *, prefix: str = "", with_pooler: bool = False, legacy: bool = False
) -> list[Rule]:
    """Name map for a ``ViTModel`` state_dict (``prefix="vit."`` inside task models;
    ``legacy=True`` for checkpoints saved by transformers < 5:
    ``encoder.layer.{i}.attention...``)."""
    p = prefix
    block, layer = (VIT_BLOCK_LEGACY, "encoder.layer") if legacy else (VIT_BLOCK, "layers")
    rules = [
        Rule(f"{p}embeddings.cls_token", ("cls_token",)),
        Rule(f"{p}embeddings.position_embeddings", ("pos_embedding",)),
        *conv_rules(f"{p}embeddings.patch_embeddings.projection", ("patch_embed",)),
        *norm_rules(f"{p}layernorm", ("norm",)),
    ]
    for i in range(config.num_hidden_layers):
        rules += block_rules(f"{p}{layer}.{i}", ("encoder", f"layer_{i}"), block)
    if with_pooler:
        rules += linear_rules(f"{p}pooler.dense", ("pooler",))
    return rules


def abstract_params(module, *inputs) -> dict:
    """Unboxed abstract params of ``module.init(key, *inputs)`` (shapes only)."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs))
    return unbox(shapes["params"])


def convert_vit(state_dict, config: ViTConfig, *, with_pooler: bool | None = None, **module_kwargs):
    """``ViTModel`` state_dict -> ``(ViT, variables)``; the pooler is detected from the keys."""
    prefix = "vit." if any(k.startswith("vit.") for k in state_dict) else ""
    if with_pooler is None:
        with_pooler = f"{prefix}pooler.dense.weight" in state_dict
    legacy = any(k.startswith(f"{prefix}encoder.layer.") for k in state_dict)
    module = ViT(config, with_pooler=with_pooler, **module_kwargs)
    images = jnp.zeros((1, config.image_size, config.image_size, config.num_channels))
    params = state_dict_to_flax(
        state_dict,
        vit_rules(config, prefix=prefix, with_pooler=with_pooler, legacy=legacy),
        expected=abstract_params(module, images),
        ignore=("classifier.*",),
        context="ViT",
    )
    return module, {"params": params}
