"""Frozen text-tower features of the identifier vocabulary (the seed's zero-shot text side).

The identifiers of every sense are words of the NRC lexicon. The default EmoSense configs embed
the whole vocabulary once with the pretrained all-MiniLM-L6-v2 tower (mean-pooled, L2-normalised:
the sentence-transformers recipe) and keep it frozen; the model learns projections from that space
into its sense space. The accelerator configs fine-tune the tower instead (tokens in the batch).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def tokenize_words(
    tokenizer, words: Sequence[str], max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention masks of each word: ([V, max_length], [V, max_length]) int32."""
    encoded = tokenizer(
        list(words),
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    return encoded["input_ids"].astype(np.int32), encoded["attention_mask"].astype(np.int32)


def embed_texts(
    words: Sequence[str], *, path: str | None = None, batch_size: int = 512, max_length: int = 16
) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM embeddings of ``words``: [V, 384] float32.

    Runs unsharded: the trainer calls this (through ``preprocess``) inside its mesh and logical
    rules, which would otherwise constrain these host-side arrays to the training mesh.
    """
    with nn.logical_axis_rules(()):
        return _embed_texts(words, path, batch_size, max_length)


def _embed_texts(words, path, batch_size, max_length) -> np.ndarray:
    from emojax.convert.bert import load_minilm
    from emojax.nn.bert import BertEncoder

    module, variables, tokenizer = load_minilm(path)
    ids, mask = tokenize_words(tokenizer, words, max_length)
    # trim the padding that no word uses
    length = max(int(mask.sum(axis=1).max()), 2)
    ids, mask = ids[:, :length], mask[:, :length]
    embed = jax.jit(
        lambda i, m: module.apply(variables, i, m, method=BertEncoder.sentence_embedding)
    )
    out = []
    for start in range(0, len(ids), batch_size):
        chunk = slice(start, start + batch_size)
        n = len(ids[chunk])
        pad = batch_size - n  # one compiled shape for every chunk
        i = np.pad(ids[chunk], ((0, pad), (0, 0)))
        m = np.pad(mask[chunk], ((0, pad), (0, 0)))
        m[n:, 0] = 1
        out.append(np.asarray(embed(jnp.asarray(i), jnp.asarray(m)))[:n])
    return np.concatenate(out).astype(np.float32)


@functools.lru_cache(maxsize=2)
def identifier_table(
    words: tuple[str, ...], path: str | None = None, cache_dir: str | None = None
) -> np.ndarray:
    """:func:`embed_texts` of the vocabulary, cached in memory and (optionally) as .npy on disk."""
    if cache_dir is None:
        return embed_texts(words, path=path)
    key = hashlib.sha1(("\n".join(words) + f"|{path}").encode()).hexdigest()[:16]
    file = os.path.join(cache_dir, f"identifiers_minilm_{key}.npy")
    if os.path.exists(file):
        table = np.load(file)
        if table.shape[0] == len(words):
            return table
    table = embed_texts(words, path=path)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = file + f".tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, table)
    os.replace(tmp, file)
    return table
