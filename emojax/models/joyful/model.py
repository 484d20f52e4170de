"""Joyful's Flax modules: fusion -> context -> graph -> classifier.

Shapes: ``B`` dialogues padded to ``L`` utterances, ``N = B * L`` graph nodes; ``D_m`` the width
of modality ``m`` (from the data, never fixed here).

- :class:`CodeFusion` (the official code): global autoencoder on ``concat_m x_m`` and a local
  branch (each modality -> ``local_dim``, learned basis attention) with its own autoencoder;
  node input ``[global || local]``; loss = MSE_global + MSE_local per utterance.
- :class:`PaperFusion` (the paper): per-modality MLPs -> concat -> a global transformer over the
  dialogue (masked) -> topic-vector smoothing (``eta``) -> the same two autoencoders.
- :class:`ConcatFusion` (COGMEN): the raw concatenation, no loss.
- :class:`ContextEncoder`: post-norm transformer over each dialogue WITH a padding mask, no
  positional encoding, then ``Dense(out_dim)``.
- :class:`GraphEncoder`: RGCN then TransformerConv (heads concatenated), masked BatchNorm,
  leaky ReLU.
- :class:`Classifier`: ``Dense(hidden)-ReLU-Dropout-Dense(C)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.models.joyful.graph import disjoint_union, num_relations
from emojax.nn.graph import RGCNConv, TransformerConv
from emojax.nn.transformer import TransformerEncoder

Dtype = Any


def _dense(features: int, name: str, dtype=jnp.float32) -> nn.Dense:
    """``nn.Dense`` with torch.nn.Linear's default kernel init (uniform, variance 1/(3 fan_in))."""
    return nn.Dense(
        features,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), ("embed", "mlp")
        ),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
        name=name,
    )


def basis_attention(b: jax.Array, x: jax.Array, chunk: int = 0) -> jax.Array:
    """The code's basis attention over the features of one vector, ``b: [D]``, ``x: [..., D]``:
    ``out_i = sum_j softmax_j(b_i * x_j) x_j`` -> ``[..., D]``. ``chunk > 0`` processes that many
    rows at a time (and recomputes them in the backward pass): memory ``chunk * D^2``."""

    def one(v):  # [D]
        weights = jax.nn.softmax((b[:, None] * v[None, :]).astype(jnp.float32), -1)  # [D(i), D(j)]
        return weights @ v.astype(jnp.float32)

    flat = x.reshape(-1, x.shape[-1])
    if chunk and flat.shape[0] > chunk:
        out = jax.lax.map(jax.checkpoint(one), flat, batch_size=chunk)
    else:
        out = jax.vmap(one)(flat)
    return out.astype(x.dtype).reshape(x.shape)


class AutoEncoder(nn.Module):
    """``Dense(hidden)-Tanh-Dense(code)-ReLU`` encoder, ``Dense(hidden)-Tanh-Dense(in)`` decoder.

    ``x: [..., F]`` -> ``(code [..., code_dim], reconstruction [..., F])``."""

    hidden: int
    code_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        code = nn.relu(
            _dense(self.code_dim, "enc2", self.dtype)(
                jnp.tanh(_dense(self.hidden, "enc1", self.dtype)(x))
            )
        )
        recon = _dense(x.shape[-1], "dec2", self.dtype)(
            jnp.tanh(_dense(self.hidden, "dec1", self.dtype)(code))
        )
        return code, recon


def _mse(recon, target, detach: bool):
    target = jax.lax.stop_gradient(target) if detach else target
    return jnp.mean(jnp.square(recon.astype(jnp.float32) - target.astype(jnp.float32)), -1)


class LocalBranch(nn.Module):
    """Each modality -> ``Dense(local_dim)`` -> basis attention; concatenated ``[..., M*local]``.
    The basis is ``Dense(local_dim, local_dim)`` applied to a vector of ones (as the code)."""

    modalities: tuple[str, ...]
    local_dim: int
    chunk: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: dict):
        b = _dense(self.local_dim, "basis")(jnp.ones((self.local_dim,), jnp.float32))
        outs = [
            basis_attention(
                b, _dense(self.local_dim, f"project_{m}", self.dtype)(inputs[m]), self.chunk
            )
            for m in self.modalities
        ]
        return jnp.concatenate(outs, -1)


class CodeFusion(nn.Module):
    """The official code's fusion: ``inputs {m: [B, L, D_m]}`` -> ``(nodes [B, L, 2*code_dim],
    loss [B, L])`` (global MSE + local MSE per utterance)."""

    modalities: tuple[str, ...]
    local_dim: int = 460
    hidden: int = 1024
    code_dim: int = 512
    chunk: int = 0
    detach_targets: bool = False
    dtype: Dtype = jnp.float32

    def global_input(self, inputs, mask, train):
        del mask, train
        return jnp.concatenate([inputs[m] for m in self.modalities], -1)

    @nn.compact
    def __call__(self, inputs, mask, *, train: bool = False):
        g = self.global_input(inputs, mask, train)
        local = LocalBranch(self.modalities, self.local_dim, self.chunk, self.dtype, name="local")(
            inputs
        )
        g_code, g_rec = AutoEncoder(self.hidden, self.code_dim, self.dtype, name="global_ae")(g)
        l_code, l_rec = AutoEncoder(self.hidden, self.code_dim, self.dtype, name="local_ae")(local)
        loss = _mse(g_rec, g, self.detach_targets) + _mse(l_rec, local, self.detach_targets)
        return jnp.concatenate([g_code, l_code], -1), loss


def topic_smoothing(h: jax.Array, eta: float) -> jax.Array:
    """``h: [B, L, F]`` -> ``(1 - eta) h_i + eta t_i`` with the running topic vector
    ``t_0 = h_0``, ``t_i = (1 - eta) t_{i-1} + eta h_i`` (causal: padding after the last
    utterance never reaches it)."""
    length = h.shape[1]
    i, k = jnp.arange(length)[:, None], jnp.arange(length)[None, :]
    weight = jnp.where(k == 0, (1 - eta) ** i, eta * (1 - eta) ** jnp.maximum(i - k, 0))
    weight = jnp.where(k <= i, weight, 0.0).astype(h.dtype)  # [L, L], rows sum to 1
    topic = jnp.einsum("ik,bkf->bif", weight, h)
    return (1 - eta) * h + eta * topic


class PaperFusion(CodeFusion):
    """The paper's fusion: the global branch is per-modality ``Dense(D_m)-ReLU`` -> concat ->
    one masked post-norm transformer layer over the dialogue -> topic smoothing (``eta``); then
    the code's two autoencoders and local branch."""

    eta: float = 0.2
    global_heads: int = 1
    dropout_rate: float = 0.0

    def global_input(self, inputs, mask, train):
        parts = [
            nn.relu(_dense(inputs[m].shape[-1], f"mlp_{m}", self.dtype)(inputs[m]))
            for m in self.modalities
        ]
        h = jnp.concatenate(parts, -1)
        if h.shape[-1] % self.global_heads:
            raise ValueError(
                f"fusion.global_heads={self.global_heads} must divide the concatenated width "
                f"{h.shape[-1]}"
            )
        h = TransformerEncoder(
            1,
            self.global_heads,
            2 * h.shape[-1],
            pre_norm=False,
            activation="relu",
            layer_norm_eps=1e-5,
            dropout_rate=self.dropout_rate,
            dtype=self.dtype,
            name="global_transformer",
        )(h, mask[:, None, None, :], train=train)
        return topic_smoothing(h, self.eta)


class ConcatFusion(nn.Module):
    """COGMEN's input: the raw concatenation ``[B, L, sum D_m]``; no fusion loss."""

    modalities: tuple[str, ...]

    def __call__(self, inputs, mask, *, train: bool = False):
        x = jnp.concatenate([inputs[m] for m in self.modalities], -1)
        return x, jnp.zeros(x.shape[:2], jnp.float32)


class ContextEncoder(nn.Module):
    """``x: [B, L, F]``, ``mask: [B, L]`` -> ``[B, L, out_dim]``: ``num_layers`` post-norm
    transformer layers (ReLU FFN, LayerNorm eps 1e-5, no positional encoding) attending only to
    the dialogue's real utterances, then ``Dense(out_dim)`` (``num_layers = 0``: projection only,
    a per-utterance model)."""

    num_layers: int
    num_heads: int
    mlp_dim: int
    out_dim: int
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool = False):
        if self.num_layers:
            if x.shape[-1] % self.num_heads:
                raise ValueError(
                    f"context.heads={self.num_heads} must divide the node input width {x.shape[-1]}"
                )
            x = TransformerEncoder(
                self.num_layers,
                self.num_heads,
                self.mlp_dim,
                pre_norm=False,
                activation="relu",
                layer_norm_eps=1e-5,
                dropout_rate=self.dropout_rate,
                dtype=self.dtype,
                name="transformer",
            )(x, mask[:, None, None, :], train=train)
        return _dense(self.out_dim, "proj", self.dtype)(x)


class GraphEncoder(nn.Module):
    """RGCN (``hidden``, ``2 S^2`` relations, mean aggregation, no bases) then TransformerConv
    (``hidden`` x ``heads``, concatenated) -> masked BatchNorm -> leaky ReLU.

    ``rgcn`` alone (:meth:`rgcn`) gives the 100-d node embeddings the contrast uses."""

    hidden: int
    n_speakers: int
    heads: int = 4
    dtype: Dtype = jnp.float32

    def setup(self):
        self.rgcn_conv = RGCNConv(self.hidden, num_relations(self.n_speakers), dtype=self.dtype)
        self.tconv = TransformerConv(self.hidden, heads=self.heads, dtype=self.dtype)
        self.norm = nn.BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self.dtype)

    def rgcn(self, x, edge_index, edge_type, edge_mask, node_mask):
        return self.rgcn_conv(x, edge_index, edge_type, edge_mask, node_mask)

    def __call__(self, x, edge_index, edge_type, edge_mask, node_mask, *, train: bool = False):
        h = self.rgcn(x, edge_index, edge_type, edge_mask, node_mask)
        out = self.tconv(h, edge_index, edge_mask, node_mask)
        out = self.norm(out, use_running_average=not train, mask=node_mask[:, None])
        return h, jnp.where(node_mask[:, None], nn.leaky_relu(out), 0.0)


class Classifier(nn.Module):
    """``Dense(hidden)-ReLU-Dropout-Dense(num_classes)``: ``[..., F] -> [..., C]`` logits."""

    hidden: int
    num_classes: int
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = nn.relu(_dense(self.hidden, "lin1", self.dtype)(x))
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
        return _dense(self.num_classes, "lin2", self.dtype)(h).astype(jnp.float32)


class JoyfulModel(nn.Module):
    """The whole model. ``batch``: the output of :func:`emojax.models.joyful.graph.collate`.

    ``__call__(batch, train, views)`` -> ``{"logits" [B, L, C], "fusion_loss" [B, L],
    "nodes" [B, L, F] (context output), "rgcn" [N, hidden] (when there is a graph),
    "views" [V, N, hidden]}``; ``views``: augmented graphs, each
    ``(feature_keep [B, L, F], (edge_src, edge_dst, edge_type, edge_mask) [B, E'])``: the context
    output times ``feature_keep`` goes through the same RGCN over those edges (the contrast's
    augmented views; the original graph is never changed).
    """

    modalities: tuple[str, ...]
    num_classes: int
    fusion: str = "code"  # code | paper | concat
    local_dim: int = 460
    ae_hidden: int = 1024
    ae_code: int = 512
    fusion_chunk: int = 0
    detach_recon_targets: bool = False
    eta: float = 0.2
    global_heads: int = 1
    context_layers: int = 4
    context_heads: int = 8
    context_mlp: int = 2048
    context_out: int = 100
    graph: bool = True
    n_speakers: int = 2
    graph_heads: int = 4
    classifier_hidden: int = 100
    dropout_rate: float = 0.3
    dtype: Dtype = jnp.float32

    def setup(self):
        mods = tuple(self.modalities)
        common = dict(
            modalities=mods,
            local_dim=self.local_dim,
            hidden=self.ae_hidden,
            code_dim=self.ae_code,
            chunk=self.fusion_chunk,
            detach_targets=self.detach_recon_targets,
            dtype=self.dtype,
        )
        if self.fusion == "code":
            self.fuse = CodeFusion(**common)
        elif self.fusion == "paper":
            self.fuse = PaperFusion(
                **common,
                eta=self.eta,
                global_heads=self.global_heads,
                dropout_rate=self.dropout_rate,
            )
        elif self.fusion == "concat":
            self.fuse = ConcatFusion(mods)
        else:
            raise ValueError(f"model.fusion.kind={self.fusion!r}: one of code, paper, concat")
        self.context = ContextEncoder(
            self.context_layers,
            self.context_heads,
            self.context_mlp,
            self.context_out,
            self.dropout_rate,
            self.dtype,
        )
        if self.graph:
            self.gnn = GraphEncoder(self.context_out, self.n_speakers, self.graph_heads, self.dtype)
        self.classifier = Classifier(
            self.classifier_hidden, self.num_classes, self.dropout_rate, self.dtype
        )

    def __call__(self, batch, *, train: bool = False, views: Sequence = ()):
        mask = batch["utt_mask"].astype(bool)
        inputs = {m: batch[m].astype(self.dtype) for m in self.modalities}
        fused, fusion_loss = self.fuse(inputs, mask, train=train)
        nodes = self.context(fused, mask, train=train)  # [B, L, F]
        out = {"fusion_loss": fusion_loss, "nodes": nodes}
        if not self.graph:
            out["logits"] = self.classifier(nodes, train=train)
            return out
        b, length, f = nodes.shape
        node_mask = mask.reshape(-1)
        edges = (batch["edge_src"], batch["edge_dst"], batch["edge_mask"], batch["edge_type"])
        index, emask, etype = disjoint_union(*edges, length)
        h, g = self.gnn(nodes.reshape(b * length, f), index, etype, emask, node_mask, train=train)
        out["rgcn"] = h
        out["logits"] = self.classifier(g, train=train).reshape(b, length, -1)
        view_out = []
        for keep, (src, dst, vtype, vmask) in views:
            v_index, v_mask, v_type = disjoint_union(src, dst, vmask, vtype, length)
            view_nodes = (nodes * keep.astype(nodes.dtype)).reshape(b * length, f)
            view_out.append(self.gnn.rgcn(view_nodes, v_index, v_type, v_mask, node_mask))
        if view_out:
            out["views"] = jnp.stack(view_out)
        return out
