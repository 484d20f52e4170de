"""Dialogue graphs for Joyful: window edges, relation types, padded batches and augmented views.

One dialogue of ``n <= L`` utterances is one graph. Edges ``j -> k`` for every ``k`` in
``[j - past, j + future]`` (self-loops included), as in COGMEN/Joyful. The relation of an edge is
``(speaker_j * S + speaker_k) * 2 + (j < k)`` with ``S = n_speakers``: ``2 S^2`` relations,
speaker ids local to each dialogue (0, 1, ... in order of appearance or as given).

A batch holds every dialogue padded to the bucket length ``L`` (:func:`collate`); its edges use
a fixed per-dialogue template of ``E(L)`` edges with local node ids and a mask, so the arrays are
``[B, ...]`` (sharded over dialogues) and the model forms the disjoint union ``[B * L]`` nodes
by offsetting each dialogue's ids (:func:`disjoint_union`). Shapes depend only on ``(B, L)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def num_relations(n_speakers: int) -> int:
    """``2 * n_speakers^2`` relation types (speaker pair x direction)."""
    return 2 * n_speakers * n_speakers


@functools.cache
def window_edges(length: int, past: int, future: int) -> tuple[np.ndarray, np.ndarray]:
    """The edge template of a dialogue padded to ``length``: ``(src [E], dst [E])`` int32, every
    ``j -> k`` with ``j - past <= k <= j + future`` inside ``[0, length)``, ordered by ``j``."""
    if past < 0 or future < 0:
        raise ValueError(f"window sizes must be >= 0, got past={past}, future={future}")
    j = np.repeat(np.arange(length), past + future + 1)
    k = j + np.tile(np.arange(-past, future + 1), length)
    keep = (k >= 0) & (k < length)
    return j[keep].astype(np.int32), k[keep].astype(np.int32)


def relation_types(speaker, src, dst, n_speakers: int):
    """``speaker [..., L]``, ``src/dst [..., E]`` -> relation ids ``[..., E]`` (NumPy or jnp)."""
    xp = jnp if isinstance(speaker, jax.Array) else np
    s_src = xp.take_along_axis(speaker, src, axis=-1)
    s_dst = xp.take_along_axis(speaker, dst, axis=-1)
    return ((s_src * n_speakers + s_dst) * 2 + (src < dst)).astype(xp.int32)


def collate(
    examples: Sequence[dict],
    *,
    max_len: int,
    n_speakers: int,
    past: int,
    future: int,
    modalities: Sequence[str],
    num_classes: int,
    multilabel: bool = False,
) -> dict[str, np.ndarray]:
    """Dialogues -> one padded batch (the Method's ``collate`` hook).

    Each example: ``{modality: [n, D_m], "speaker": [n], "label": [n] (or [n, C] multi-label)}``.
    Returns ``{modality: [B, L, D_m], "speaker" [B, L], "label" [B, L] (or [B, L, C]),
    "utt_mask" [B, L], "edge_src"/"edge_dst"/"edge_type" [B, E], "edge_mask" [B, E]}``.

    Raises ValueError (naming the dialogue's position and its ``vid`` when present) for a dialogue
    longer than ``max_len``, a speaker id outside ``[0, n_speakers)``, labels outside the classes,
    mismatched lengths or non-finite features.
    """
    b = len(examples)
    src, dst = window_edges(max_len, past, future)
    out = {m: None for m in modalities}
    speaker = np.zeros((b, max_len), np.int32)
    label_shape = (b, max_len, num_classes) if multilabel else (b, max_len)
    label = np.zeros(label_shape, np.float32 if multilabel else np.int32)
    utt_mask = np.zeros((b, max_len), bool)
    for i, ex in enumerate(examples):
        where = f"dialogue {i} of the batch" + (f" (vid {ex['vid']!r})" if "vid" in ex else "")
        n = len(ex["speaker"])
        if n == 0:
            raise ValueError(f"joyful: {where} has no utterances")
        if n > max_len:
            raise ValueError(
                f"joyful: {where} has {n} utterances, more than the largest bucket "
                f"data.max_len={max_len}; raise data.max_len to at least {n}"
            )
        spk = np.asarray(ex["speaker"], np.int64)
        if spk.min() < 0 or spk.max() >= n_speakers:
            raise ValueError(
                f"joyful: {where} has speaker ids {sorted(set(spk.tolist()))}, outside the "
                f"relation table of model.graph.n_speakers={n_speakers} "
                f"({num_relations(n_speakers)} relations); raise n_speakers"
            )
        lab = np.asarray(ex["label"])
        if lab.shape[:1] != (n,) or (multilabel and lab.shape != (n, num_classes)):
            raise ValueError(f"joyful: {where} has labels of shape {lab.shape} for {n} utterances")
        if not multilabel and (lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(
                f"joyful: {where} has labels {sorted(set(lab.tolist()))} outside "
                f"[0, {num_classes}) (model.num_classes)"
            )
        for m in modalities:
            x = np.asarray(ex[m], np.float32)
            if x.ndim != 2 or x.shape[0] != n:
                raise ValueError(f"joyful: {where} field {m!r} has shape {x.shape}, want [{n}, D]")
            if not np.all(np.isfinite(x)):
                raise ValueError(f"joyful: {where} field {m!r} has non-finite values")
            if out[m] is None:
                out[m] = np.zeros((b, max_len, x.shape[1]), np.float32)
            if x.shape[1] != out[m].shape[2]:
                raise ValueError(
                    f"joyful: {where} field {m!r} has width {x.shape[1]}, others {out[m].shape[2]}"
                )
            out[m][i, :n] = x
        speaker[i, :n] = spk
        label[i, :n] = lab
        utt_mask[i, :n] = True
    lengths = utt_mask.sum(1)
    edge_mask = (src[None] < lengths[:, None]) & (dst[None] < lengths[:, None])
    out.update(
        speaker=speaker,
        label=label,
        utt_mask=utt_mask,
        edge_src=np.broadcast_to(src, (b, len(src))).copy(),
        edge_dst=np.broadcast_to(dst, (b, len(dst))).copy(),
        edge_type=np.where(edge_mask, relation_types(speaker, src[None], dst[None], n_speakers), 0),
        edge_mask=edge_mask,
    )
    return out


def disjoint_union(edge_src, edge_dst, edge_mask, edge_type, num_nodes_per_graph: int):
    """Per-dialogue ``[B, E]`` edges -> one graph of ``B * L`` nodes: ``edge_index [2, B*E]``
    (global ids ``b * L + local``), ``edge_mask [B*E]``, ``edge_type [B*E]``."""
    offset = (jnp.arange(edge_src.shape[0]) * num_nodes_per_graph)[:, None]
    index = jnp.stack([(edge_src + offset).reshape(-1), (edge_dst + offset).reshape(-1)])
    return index, edge_mask.reshape(-1), edge_type.reshape(-1)


# -- augmented views (pure, on device) --------------------------------------------------------


def mask_features(rng, x, rate: float):
    """Feature masking: each entry of ``x`` zeroed with probability ``rate`` (no rescaling)."""
    return jnp.where(jax.random.bernoulli(rng, 1.0 - rate, x.shape), x, 0.0).astype(x.dtype)


def rewire_edges(rng, edge_dst, edge_mask, utt_mask, rate: float):
    """Edge perturbation inside each dialogue: each valid edge's target is replaced, with
    probability ``rate``, by a uniformly drawn utterance of the SAME dialogue (the official code
    draws from the whole batch). Returns new ``edge_dst [B, E]``; the inputs are not changed
    (relation types are kept, as in the official code)."""
    k_pick, k_node = jax.random.split(rng)
    lengths = jnp.sum(utt_mask, axis=1, keepdims=True)
    new = jnp.floor(jax.random.uniform(k_node, edge_dst.shape) * lengths).astype(edge_dst.dtype)
    new = jnp.minimum(new, jnp.maximum(lengths - 1, 0))
    pick = jax.random.bernoulli(k_pick, rate, edge_dst.shape) & edge_mask
    return jnp.where(pick, new, edge_dst)


def adjacency(edge_src, edge_dst, edge_mask, length: int):
    """Dense ``[B, L, L]`` float adjacency, ``A[b, j, k] = 1`` for an edge ``j -> k``."""
    b = edge_src.shape[0]
    rows = jnp.arange(b)[:, None]
    a = jnp.zeros((b, length, length), jnp.float32)
    return a.at[rows, edge_src, edge_dst].max(edge_mask.astype(jnp.float32))


def katz_edges(
    edge_src, edge_dst, edge_mask, utt_mask, *, beta, order, threshold, n_speakers, speaker
):
    """High-order edges (the paper's second view): pairs whose truncated Katz index
    ``sum_{l=1..order} beta^l A^l`` exceeds ``threshold`` and that are not edges already.

    Returns dense per-dialogue edges ``(src, dst, type, mask)``, each ``[B, L*L]``.
    """
    length = utt_mask.shape[1]
    a = adjacency(edge_src, edge_dst, edge_mask, length)
    power, score = a, beta * a
    for level in range(2, order + 1):
        power = power @ a
        score = score + beta**level * power
    valid = utt_mask[:, :, None] & utt_mask[:, None, :]
    new = (score > threshold) & (a == 0) & valid
    j, k = jnp.meshgrid(jnp.arange(length), jnp.arange(length), indexing="ij")
    b = edge_src.shape[0]
    src = jnp.broadcast_to(j.reshape(-1), (b, length * length)).astype(jnp.int32)
    dst = jnp.broadcast_to(k.reshape(-1), (b, length * length)).astype(jnp.int32)
    etype = relation_types(speaker, src, dst, n_speakers)
    return src, dst, etype, new.reshape(b, -1)
