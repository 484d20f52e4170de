"""PyTorch teacher -> Flax params of :class:`emojax.models.anp_distill.model.RegionTextEncoder`.

The PyTorch structure (benchmarks/torch_anp_distill.py ``TorchTeacher``): ``embed``
(``nn.Embedding``), ``positions`` (``[max_length, dim]``), ``encoder``
(``nn.TransformerEncoder`` of post-norm ReLU ``nn.TransformerEncoderLayer`` s, batch first) and
``head`` (``nn.Linear``). ``self_attn.in_proj_weight [3 dim, dim]`` is split into query / key /
value (rows in that order, heads joined along the features as in our Dense layers).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from emojax.convert.core import Rule, block_rules, linear_rules, state_dict_to_flax, to_numpy

TORCH_LAYER_NAMES = {
    "query": "self_attn.q",
    "key": "self_attn.k",
    "value": "self_attn.v",
    "out": "self_attn.out_proj",
    "fc1": "linear1",
    "fc2": "linear2",
    "norm1": "norm1",
    "norm2": "norm2",
}


def split_in_proj(state_dict: Mapping, prefix: str = "encoder.layers") -> dict[str, np.ndarray]:
    """``...self_attn.in_proj_{weight,bias}`` -> ``...self_attn.{q,k,v}.{weight,bias}``."""
    out = {}
    for name, tensor in state_dict.items():
        array = to_numpy(tensor)
        if name.startswith(prefix) and ".self_attn.in_proj_" in name:
            base, kind = name.rsplit(".in_proj_", 1)
            for part, chunk in zip("qkv", np.split(array, 3, axis=0), strict=True):
                out[f"{base}.{part}.{kind}"] = chunk
        else:
            out[name] = array
    return out


def teacher_rules(num_layers: int) -> list[Rule]:
    rules = [Rule("embed.weight", ("embed", "embedding")), Rule("positions", ("positions",))]
    for i in range(num_layers):
        rules += block_rules(f"encoder.layers.{i}", ("encoder", f"layer_{i}"), TORCH_LAYER_NAMES)
    return rules + linear_rules("head", ("head",))


def convert_teacher(state_dict: Mapping, module) -> dict:
    """``TorchTeacher.state_dict()`` -> ``params`` of ``module`` (a RegionTextEncoder); one
    :class:`emojax.convert.ConversionError` lists every missing / mis-shaped tensor."""
    import jax
    import jax.numpy as jnp

    from emojax.convert.core import unbox

    tokens = jnp.zeros((1, module.max_length), jnp.int32)
    expected = unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), tokens)))["params"]
    return state_dict_to_flax(
        split_in_proj(state_dict),
        teacher_rules(module.num_layers),
        expected=expected,
        context="anp_distill teacher",
    )
