"""torch_geometric ``GCNConv`` / ``RGCNConv`` / ``TransformerConv`` -> :mod:`emojax.nn.graph`."""

from __future__ import annotations

from emojax.convert.core import Rule, linear_rules


def gcn_rules(prefix: str = "") -> list[Rule]:
    """``GCNConv``: ``lin.weight`` (no bias) and ``bias``."""
    return linear_rules(f"{prefix}lin", ("lin",), bias=False) + [Rule(f"{prefix}bias", ("bias",))]


def rgcn_rules(prefix: str = "", *, num_bases: int | None = None) -> list[Rule]:
    """``RGCNConv``: ``weight``, ``comp`` (with bases), ``root``, ``bias`` (same layouts)."""
    names = ["weight", "root", "bias"] + (["comp"] if num_bases else [])
    return [Rule(f"{prefix}{name}", (name,)) for name in names]


def transformer_conv_rules(prefix: str = "", *, root_weight: bool = True) -> list[Rule]:
    """``TransformerConv`` (no edge_dim, no beta): the four linear layers."""
    names = ["lin_query", "lin_key", "lin_value"] + (["lin_skip"] if root_weight else [])
    return [r for name in names for r in linear_rules(f"{prefix}{name}", (name,))]
