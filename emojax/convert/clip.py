"""Hugging Face ``CLIPModel`` -> :class:`emojax.nn.CLIP`."""

from __future__ import annotations

import jax.numpy as jnp

from emojax.convert.core import (
    Rule,
    block_rules,
    conv_rules,
    linear_rules,
    norm_rules,
    state_dict_to_flax,
)
from emojax.convert.vit import abstract_params
from emojax.nn.clip import CLIP, CLIPConfig

CLIP_BLOCK = {
    "query": "self_attn.q_proj",
    "key": "self_attn.k_proj",
    "value": "self_attn.v_proj",
    "out": "self_attn.out_proj",
    "norm1": "layer_norm1",
    "fc1": "mlp.fc1",
    "fc2": "mlp.fc2",
    "norm2": "layer_norm2",
}


def clip_rules(config: CLIPConfig) -> list[Rule]:
    """Name map for a ``CLIPModel`` state_dict."""
    t, v = "text_model", "vision_model"
    rules = [
        Rule(f"{t}.embeddings.token_embedding.weight", ("text", "token_embedding", "embedding")),
        Rule(
            f"{t}.embeddings.position_embedding.weight", ("text", "position_embedding", "embedding")
        ),
        *norm_rules(f"{t}.final_layer_norm", ("text", "final_norm")),
        Rule(f"{v}.embeddings.class_embedding", ("vision", "cls_token"), "prepend2"),
        Rule(f"{v}.embeddings.position_embedding.weight", ("vision", "pos_embedding"), "prepend1"),
        *conv_rules(f"{v}.embeddings.patch_embedding", ("vision", "patch_embed"), bias=False),
        *norm_rules(f"{v}.pre_layrnorm", ("vision", "pre_norm")),
        *norm_rules(f"{v}.post_layernorm", ("vision", "norm")),
        *linear_rules("visual_projection", ("visual_projection",), bias=False),
        *linear_rules("text_projection", ("text_projection",), bias=False),
        Rule("logit_scale", ("logit_scale",)),
    ]
    for i in range(config.text.num_hidden_layers):
        rules += block_rules(
            f"{t}.encoder.layers.{i}", ("text", "encoder", f"layer_{i}"), CLIP_BLOCK
        )
    for i in range(config.vision.num_hidden_layers):
        rules += block_rules(
            f"{v}.encoder.layers.{i}", ("vision", "encoder", f"layer_{i}"), CLIP_BLOCK
        )
    return rules


def convert_clip(state_dict, config: CLIPConfig, **module_kwargs):
    """``CLIPModel`` state_dict -> ``(CLIP, variables)``."""
    module = CLIP(config, **module_kwargs)
    v = config.vision
    images = jnp.zeros((1, v.image_size, v.image_size, v.num_channels))
    ids = jnp.zeros((1, 2), jnp.int32)
    params = state_dict_to_flax(
        state_dict,
        clip_rules(config),
        expected=abstract_params(module, images, ids),
        ignore=("*position_ids",),
        context="CLIP",
    )
    return module, {"params": params}
