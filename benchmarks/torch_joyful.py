"""The PyTorch + torch_geometric Joyful peer: the official code's structure (AutoFusion with basis
attention, nn.TransformerEncoder context, RGCNConv -> TransformerConv -> BatchNorm1d, classifier)
written from REFERENCES.md, with a padding mask and per-dialogue rewiring (the bugs fixed as in
emojax). Shared by tests/test_joyful_parity.py and benchmarks/joyful.py.

The graph runs on the real utterances only (packed, as the official code does); weights come from
the Flax params (:func:`state_dict_from_flax`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch_geometric import nn as pyg

from emojax.convert.core import Rule, flax_to_state_dict, linear_rules, norm_rules


class TorchAutoEncoder(nn.Module):
    def __init__(self, dim: int, hidden: int, code: int):
        super().__init__()
        self.enc1, self.enc2 = nn.Linear(dim, hidden), nn.Linear(hidden, code)
        self.dec1, self.dec2 = nn.Linear(code, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        code = F.relu(self.enc2(torch.tanh(self.enc1(x))))
        return code, self.dec2(torch.tanh(self.dec1(code)))


def _basis_rows(b, p):
    attn = torch.softmax(b[:, None] * p[..., None, :], dim=-1)  # [..., D(i), D(j)]
    return (attn @ p[..., None])[..., 0]


def _basis_attention(b, p, chunk: int):
    if not chunk:
        return _basis_rows(b, p)
    flat = p.reshape(-1, p.shape[-1])
    parts = [
        torch.utils.checkpoint.checkpoint(_basis_rows, b, flat[i : i + chunk], use_reentrant=False)
        for i in range(0, flat.shape[0], chunk)
    ]
    return torch.cat(parts).reshape(p.shape)


class TorchCodeFusion(nn.Module):
    """AutoFusion of the official code, batched over utterances and with data-given widths."""

    def __init__(self, dims: dict[str, int], local_dim: int, hidden: int, code: int):
        super().__init__()
        self.modalities = tuple(dims)
        self.local_dim = local_dim
        self.project = nn.ModuleDict({m: nn.Linear(d, local_dim) for m, d in dims.items()})
        self.basis = nn.Linear(local_dim, local_dim)
        self.global_ae = TorchAutoEncoder(sum(dims.values()), hidden, code)
        self.local_ae = TorchAutoEncoder(len(dims) * local_dim, hidden, code)

    chunk: int = 0  # > 0: basis attention over that many utterances at a time, recomputed

    def forward(self, inputs: dict):
        b = self.basis(torch.ones(self.local_dim))
        local = []
        for m in self.modalities:
            p = self.project[m](inputs[m])  # [..., D]
            local.append(_basis_attention(b, p, self.chunk))
        local = torch.cat(local, -1)
        g = torch.cat([inputs[m] for m in self.modalities], -1)
        g_code, g_rec = self.global_ae(g)
        l_code, l_rec = self.local_ae(local)
        loss = ((g_rec - g) ** 2).mean(-1) + ((l_rec - local) ** 2).mean(-1)
        return torch.cat([g_code, l_code], -1), loss


class TorchContext(nn.Module):
    """nn.TransformerEncoder (post-norm, ReLU) with src_key_padding_mask, then Linear."""

    def __init__(self, dim, layers, heads, mlp, out, dropout=0.0):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.proj = nn.Linear(dim, out)

    def forward(self, x, mask):
        return self.proj(self.encoder(x, src_key_padding_mask=~mask))


class TorchClassifier(nn.Module):
    def __init__(self, dim, hidden, classes, dropout=0.0):
        super().__init__()
        self.lin1, self.lin2, self.drop = (
            nn.Linear(dim, hidden),
            nn.Linear(hidden, classes),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.lin2(self.drop(F.relu(self.lin1(x))))


class TorchJoyful(nn.Module):
    """The whole peer: ``forward(batch, views)`` -> (logits [n, C], fusion loss [n], rgcn
    [n, H], [rgcn of each view]); ``n`` real utterances in batch order."""

    def __init__(
        self,
        dims,
        *,
        num_classes,
        local_dim,
        hidden,
        code,
        layers,
        heads,
        mlp,
        out,
        n_speakers,
        graph_heads,
        classifier_hidden,
        dropout=0.0,
    ):
        super().__init__()
        self.fuse = TorchCodeFusion(dims, local_dim, hidden, code)
        self.context = TorchContext(2 * code, layers, heads, mlp, out, dropout)
        self.rgcn = pyg.RGCNConv(out, out, 2 * n_speakers * n_speakers)
        self.tconv = pyg.TransformerConv(out, out, heads=graph_heads)
        self.norm = nn.BatchNorm1d(out * graph_heads)
        self.classifier = TorchClassifier(
            out * graph_heads, classifier_hidden, num_classes, dropout
        )

    def forward(self, batch: dict, views=()):
        mask = batch["utt_mask"]
        fused, fusion_loss = self.fuse({m: batch[m] for m in self.fuse.modalities})
        nodes = self.context(fused, mask)[mask]  # [n, F] real utterances
        h = self.rgcn(nodes, batch["edge_index"], batch["edge_type"])
        g = F.leaky_relu(self.norm(self.tconv(h, batch["edge_index"])))
        views_out = [self.rgcn(nodes * keep, index, etype) for keep, index, etype in views]
        return self.classifier(g), fusion_loss[mask], h, views_out


def packed_edges(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """The batch's valid edges with ids of the packed real utterances: ``(edge_index [2, E],
    edge_type [E])`` (NumPy)."""
    mask = np.asarray(batch["utt_mask"], bool)
    b, length = mask.shape
    packed = np.cumsum(mask.reshape(-1)) - 1  # global padded id -> packed id
    offset = (np.arange(b) * length)[:, None]
    emask = np.asarray(batch["edge_mask"], bool)
    src = (np.asarray(batch["edge_src"]) + offset)[emask]
    dst = (np.asarray(batch["edge_dst"]) + offset)[emask]
    return np.stack([packed[src], packed[dst]]), np.asarray(batch["edge_type"])[emask]


def torch_batch(batch: dict, modalities) -> dict:
    """A collated emojax batch as torch tensors, with packed edges."""
    index, etype = packed_edges(batch)
    out = {m: torch.tensor(np.asarray(batch[m])) for m in modalities}
    out["utt_mask"] = torch.tensor(np.asarray(batch["utt_mask"], bool))
    out["label"] = torch.tensor(np.asarray(batch["label"], np.int64))[out["utt_mask"]]
    out["edge_index"] = torch.tensor(index, dtype=torch.long)
    out["edge_type"] = torch.tensor(etype, dtype=torch.long)
    return out


def grace_loss(z1, z2, tau: float):
    """GRACE (Zhu et al. 2020) symmetric loss, as its reference implementation writes it:
    ``-log(between_ii / (sum_k refl_ik + sum_k between_ik - refl_ii))`` per direction, mean."""

    def semi(a, b):
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        refl = torch.exp(a @ a.T / tau)
        between = torch.exp(a @ b.T / tau)
        return -torch.log(between.diag() / (refl.sum(1) + between.sum(1) - refl.diag()))

    return 0.5 * (semi(z1, z2) + semi(z2, z1)).mean()


def training_loss(model, batch, views, *, w_contrast: float, w_fusion: float, tau: float):
    """CE + w_fusion * fusion + w_contrast * sum over views of GRACE (the emojax objective)."""
    logits, fusion, h, view_h = model(batch, views)
    loss = F.cross_entropy(logits, batch["label"]) + w_fusion * fusion.mean()
    for z in view_h:
        loss = loss + w_contrast * grace_loss(h, z, tau)
    return loss


def random_views(batch: dict, n_views: int, feature_mask: float, rewire: float, dim: int, gen):
    """Feature masking + per-dialogue edge rewiring views (new tensors)."""
    mask = batch["utt_mask"]
    lengths = mask.sum(1)
    n = int(mask.sum())
    starts = torch.cumsum(lengths, 0) - lengths  # packed id of each dialogue's first utterance
    dialogue = torch.repeat_interleave(torch.arange(mask.shape[0]), lengths)
    views = []
    for _ in range(n_views):
        keep = (torch.rand(n, dim, generator=gen) >= feature_mask).float()
        index = batch["edge_index"].clone()
        pick = torch.rand(index.shape[1], generator=gen) < rewire
        d = dialogue[index[1]]
        new = starts[d] + (torch.rand(index.shape[1], generator=gen) * lengths[d]).long()
        index[1] = torch.where(pick, new, index[1])
        views.append((keep, index, batch["edge_type"]))
    return views


# -- Flax -> torch weights ------------------------------------------------------------------------


def _ae_rules(torch_prefix, path):
    return [
        r
        for n in ("enc1", "enc2", "dec1", "dec2")
        for r in linear_rules(f"{torch_prefix}.{n}", path + (n,))
    ]


def joyful_rules(modalities, layers: int) -> list[Rule]:
    """Name map of the Linear / LayerNorm / graph weights (attention in-proj packed apart)."""
    rules = []
    for m in modalities:
        rules += linear_rules(f"fuse.project.{m}", ("fuse", "local", f"project_{m}"))
    rules += linear_rules("fuse.basis", ("fuse", "local", "basis"))
    rules += _ae_rules("fuse.global_ae", ("fuse", "global_ae"))
    rules += _ae_rules("fuse.local_ae", ("fuse", "local_ae"))
    for i in range(layers):
        t, p = f"context.encoder.layers.{i}", ("context", "transformer", f"layer_{i}")
        rules += linear_rules(f"{t}.self_attn.out_proj", p + ("attn", "out"))
        rules += linear_rules(f"{t}.linear1", p + ("mlp", "fc1"))
        rules += linear_rules(f"{t}.linear2", p + ("mlp", "fc2"))
        rules += norm_rules(f"{t}.norm1", p + ("norm1",))
        rules += norm_rules(f"{t}.norm2", p + ("norm2",))
    rules += linear_rules("context.proj", ("context", "proj"))
    rules += [Rule(f"rgcn.{n}", ("gnn", "rgcn_conv", n)) for n in ("weight", "root", "bias")]
    for n in ("lin_query", "lin_key", "lin_value", "lin_skip"):
        rules += linear_rules(f"tconv.{n}", ("gnn", "tconv", n))
    rules += [
        Rule("norm.weight", ("gnn", "norm", "scale")),
        Rule("norm.bias", ("gnn", "norm", "bias")),
    ]
    rules += linear_rules("classifier.lin1", ("classifier", "lin1"))
    rules += linear_rules("classifier.lin2", ("classifier", "lin2"))
    return rules


def state_dict_from_flax(params, batch_stats, modalities, layers: int) -> dict:
    """Flax variables -> a state_dict for :class:`TorchJoyful` (load with ``strict=True``)."""
    from emojax.convert.core import unbox

    params = unbox(params)
    sd = flax_to_state_dict(params, joyful_rules(modalities, layers))
    for i in range(layers):
        attn = params["context"]["transformer"][f"layer_{i}"]["attn"]
        qkv = [attn[n] for n in ("query", "key", "value")]
        sd[f"context.encoder.layers.{i}.self_attn.in_proj_weight"] = np.concatenate(
            [np.asarray(x["kernel"]).T for x in qkv]
        )
        sd[f"context.encoder.layers.{i}.self_attn.in_proj_bias"] = np.concatenate(
            [np.asarray(x["bias"]) for x in qkv]
        )
    stats = unbox(batch_stats)["gnn"]["norm"]
    sd["norm.running_mean"] = np.asarray(stats["mean"])
    sd["norm.running_var"] = np.asarray(stats["var"])
    sd["norm.num_batches_tracked"] = np.array(0)
    return {k: torch.tensor(np.array(v)) for k, v in sd.items()}
