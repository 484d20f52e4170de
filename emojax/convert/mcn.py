"""MCN's PyTorch ``Net`` (brian7685/Multimodal-Clustering-Network ``model_tri_kmeans.py``,
``tri_modal=True``) -> the variables of ``emojax.models.mcn.model.MCNModel``.

Torch names: ``GU_video``, ``DAVEnet`` (a ``ResDavenet``, either layout: see
:mod:`emojax.convert.resdavenet`), ``GU_audio``, ``DAVEnet_projection``,
``text_pooling_caption.fc``, ``GU_text_captions``, ``recon_{v,a,t}.{0,2}``; a Gated Embedding
Unit is ``fc`` + ``cg.fc``. The ``withMLP`` clustering heads (``classification*``,
``projection_head*``) have no counterpart and are ignored; so are the unused ``batchnorm1`` and
``num_batches_tracked``. The official ``recon_size`` default is 768 (set ``recon_hidden``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.convert.core import Rule, linear_rules, state_dict_to_flax, unbox
from emojax.convert.resdavenet import IGNORE as RESDAVENET_IGNORE
from emojax.convert.resdavenet import resdavenet_rules, to_conv1d_layout
from emojax.nn.resdavenet import ResDAVEnetConfig

IGNORE = (*RESDAVENET_IGNORE, "classification*", "projection_head*")


def _linear(torch_prefix: str, path: tuple[str, ...]) -> list[Rule]:
    return [
        Rule(r.torch_name, ("params", *r.flax_path), r.transform)
        for r in linear_rules(torch_prefix, path)
    ]


def _geu(torch_prefix: str, path: tuple[str, ...]) -> list[Rule]:
    return _linear(f"{torch_prefix}.fc", (*path, "fc")) + _linear(
        f"{torch_prefix}.cg.fc", (*path, "gating", "fc")
    )


def mcn_rules(
    audio: ResDAVEnetConfig = ResDAVEnetConfig(),
    *,
    reconstruction: bool = True,
    modalities: tuple[str, ...] = ("video", "audio", "text"),
) -> list[Rule]:
    """Name map onto the full variables dict (``params`` and ``batch_stats``)."""
    rules = []
    if "video" in modalities:
        rules += _geu("GU_video", ("video", "geu"))
    if "audio" in modalities:
        rules += resdavenet_rules(audio, prefix="DAVEnet.", path=("audio", "resdavenet"))
        rules += _geu("GU_audio", ("audio", "geu"))
        rules += _linear("DAVEnet_projection", ("audio", "projection"))
    if "text" in modalities:
        rules += _linear("text_pooling_caption.fc", ("text", "fc"))
        rules += _geu("GU_text_captions", ("text", "geu"))
    if reconstruction:
        for m in modalities:
            rules += _linear(f"recon_{m[0]}.0", (f"recon_{m}", "fc1"))
            rules += _linear(f"recon_{m[0]}.2", (f"recon_{m}", "fc2"))
    return rules


def convert_mcn(state_dict, model) -> dict:
    """``Net`` state_dict -> ``MCNModel`` variables (``params``, ``batch_stats``); ``model`` is
    the ``MCNModel`` they are for (its sizes are checked against every tensor). Extra
    ``spaces`` heads have no official weights: convert with ``spaces=()``."""
    if tuple(model.spaces):
        raise ValueError("convert_mcn: the official Net has no extra spaces; use spaces=()")
    a = model.audio
    batch = {
        "video": jnp.zeros((1, model.video_dim)),
        "audio": jnp.zeros((1, 16, a.feat_dim)),
        "text": jnp.zeros((1, 2, model.word_dim)),
        "text_mask": jnp.ones((1, 2), bool),
    }
    expected = unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), batch)))
    return state_dict_to_flax(
        to_conv1d_layout(state_dict, prefix="DAVEnet."),
        mcn_rules(a, reconstruction=model.reconstruction),
        expected=expected,
        ignore=IGNORE,
        context="MCN Net",
    )
