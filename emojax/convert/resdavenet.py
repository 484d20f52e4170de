"""PyTorch ``ResDavenet`` (DAVEnet / AVLnet / MCN) -> :class:`emojax.nn.resdavenet.ResDAVEnet`.

Reads both layouts: the official one (``Conv2d`` with ``(feat_dim, 1)`` / ``(1, k)`` / ``1x1``
kernels, ``BatchNorm2d``) and the same network written with ``Conv1d`` / ``BatchNorm1d``; torch
names ``conv1``, ``bn1``, ``layer{s+1}.{b}.{conv1, bn1, conv2, bn2, downsample.0,
downsample.1}``. The official unused ``batchnorm1`` and ``num_batches_tracked`` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from emojax.convert.core import Rule, state_dict_to_flax, to_numpy, unbox
from emojax.nn.resdavenet import ResDAVEnet, ResDAVEnetConfig

IGNORE = ("*num_batches_tracked", "*batchnorm1.*")


def _conv_norm(conv: str, norm: str, path: tuple[str, ...]) -> list[Rule]:
    return [
        Rule(f"{conv}.weight", ("params", *path, "conv", "kernel"), "conv1d"),
        Rule(f"{norm}.weight", ("params", *path, "norm", "scale")),
        Rule(f"{norm}.bias", ("params", *path, "norm", "bias")),
        Rule(f"{norm}.running_mean", ("batch_stats", *path, "norm", "mean")),
        Rule(f"{norm}.running_var", ("batch_stats", *path, "norm", "var")),
    ]


def resdavenet_rules(
    config: ResDAVEnetConfig, *, prefix: str = "", path: tuple[str, ...] = ()
) -> list[Rule]:
    """Name map onto the full variables dict (``params`` and ``batch_stats``), Conv1d layout
    (apply :func:`to_conv1d_layout` to an official Conv2d state_dict first). ``prefix``: the
    torch module's name plus a dot (``"DAVEnet."`` inside MCN's ``Net``); ``path``: where the
    ResDAVEnet sits inside the Flax tree."""
    p = prefix
    rules = _conv_norm(f"{p}conv1", f"{p}bn1", (*path, "stem"))
    in_width = config.widths[0]
    for s, depth in enumerate(config.depths):
        width = config.widths[s + 1]
        for b in range(depth):
            t, f = f"{p}layer{s + 1}.{b}", (*path, f"stage_{s}_block_{b}")
            rules += _conv_norm(f"{t}.conv1", f"{t}.bn1", (*f, "layer_0"))
            rules += _conv_norm(f"{t}.conv2", f"{t}.bn2", (*f, "layer_1"))
            if b == 0 and (config.stride != 1 or in_width != width):
                rules += _conv_norm(f"{t}.downsample.0", f"{t}.downsample.1", (*f, "shortcut"))
            in_width = width
    return rules


def to_conv1d_layout(state_dict: Mapping, *, prefix: str = "") -> dict[str, np.ndarray]:
    """Official ``Conv2d`` weights -> ``Conv1d`` ``[out, in, width]`` (other tensors as they are).

    The stem ``conv1.weight [w0, 1, feat_dim, 1]`` becomes ``[w0, feat_dim, 1]`` (the mel bins
    are its input channels); a block conv ``[out, in, 1, k]`` becomes ``[out, in, k]``. Every
    array is a copy: a torch state_dict shares memory with the live module, whose running
    statistics a later train-mode forward would otherwise rewrite under the converted ones."""
    out = {}
    for name, tensor in state_dict.items():
        array = np.array(to_numpy(tensor), copy=True)
        if name.startswith(prefix) and name.endswith(".weight") and array.ndim == 4:
            if name == f"{prefix}conv1.weight":
                if array.shape[1] != 1 or array.shape[3] != 1:
                    raise ValueError(
                        f"{name}: expected the stem Conv2d(1, out, (feat_dim, 1)) weight "
                        f"[out, 1, feat_dim, 1], got {array.shape}"
                    )
                array = array[:, 0, :, :]
            else:
                if array.shape[2] != 1:
                    raise ValueError(
                        f"{name}: expected a Conv2d (1, k) weight [out, in, 1, k], "
                        f"got {array.shape}"
                    )
                array = array[:, :, 0, :]
        out[name] = array
    return out


def convert_resdavenet(state_dict, config: ResDAVEnetConfig = ResDAVEnetConfig(), **module_kwargs):
    """``ResDavenet`` state_dict (either layout) -> ``(ResDAVEnet, variables)`` with ``params``
    and ``batch_stats``."""
    module = ResDAVEnet(config, **module_kwargs)
    mel = jnp.zeros((1, 16, config.feat_dim))
    expected = unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), mel)))
    variables = state_dict_to_flax(
        to_conv1d_layout(state_dict),
        resdavenet_rules(config),
        expected=expected,
        ignore=IGNORE,
        context="ResDAVEnet",
    )
    return module, variables
