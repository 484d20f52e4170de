"""Hugging Face ``ResNetModel`` -> :class:`emojax.nn.ResNet` (params and ``batch_stats``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.convert.core import Rule, state_dict_to_flax, unbox
from emojax.nn.resnet import ResNet, ResNetConfig


def _conv_norm(torch_prefix: str, path: tuple[str, ...]) -> list[Rule]:
    return [
        Rule(f"{torch_prefix}.convolution.weight", ("params", *path, "conv", "kernel"), "conv"),
        Rule(f"{torch_prefix}.normalization.weight", ("params", *path, "norm", "scale")),
        Rule(f"{torch_prefix}.normalization.bias", ("params", *path, "norm", "bias")),
        Rule(f"{torch_prefix}.normalization.running_mean", ("batch_stats", *path, "norm", "mean")),
        Rule(f"{torch_prefix}.normalization.running_var", ("batch_stats", *path, "norm", "var")),
    ]


def resnet_rules(config: ResNetConfig, *, prefix: str = "") -> list[Rule]:
    """Name map onto the full variables dict (``params`` and ``batch_stats``).
    ``prefix="resnet."`` inside ``ResNetForImageClassification``."""
    p = prefix
    rules = _conv_norm(f"{p}embedder.embedder", ("stem",))
    in_features = config.embedding_size
    for s, (features, depth) in enumerate(zip(config.hidden_sizes, config.depths, strict=True)):
        for b in range(depth):
            t, f = f"{p}encoder.stages.{s}.layers.{b}", f"stage_{s}_block_{b}"
            stride = 2 if b == 0 and (s > 0 or config.downsample_in_first_stage) else 1
            if in_features != features or stride != 1:
                rules += _conv_norm(f"{t}.shortcut", (f, "shortcut"))
            n_layers = 3 if config.layer_type == "bottleneck" else 2
            for i in range(n_layers):
                rules += _conv_norm(f"{t}.layer.{i}", (f, f"layer_{i}"))
            in_features = features
    return rules


def convert_resnet(state_dict, config: ResNetConfig, **module_kwargs):
    """``ResNetModel`` state_dict -> ``(ResNet, variables)`` with ``params`` and ``batch_stats``."""
    prefix = "resnet." if any(k.startswith("resnet.") for k in state_dict) else ""
    module = ResNet(config, **module_kwargs)
    images = jnp.zeros((1, 32, 32, config.num_channels))
    expected = unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), images)))
    variables = state_dict_to_flax(
        state_dict,
        resnet_rules(config, prefix=prefix),
        expected=expected,
        ignore=("*num_batches_tracked", "classifier.*"),
        context="ResNet",
    )
    return module, variables
