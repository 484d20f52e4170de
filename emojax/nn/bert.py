"""BERT-style text encoder (Hugging Face ``BertModel`` layout), sentence pooling, MLM head.

Usage::

    enc = BertEncoder(BertConfig(...))
    hidden = enc.apply(params, input_ids, attention_mask)  # [batch, length, hidden]
    logits = enc.apply(params, hidden, method=BertEncoder.mlm_logits)  # [batch, length, vocab]
    # only at some positions: [batch, P, vocab]
    logits = enc.apply(params, hidden, positions, method=BertEncoder.mlm_logits)
    emb = enc.apply(params, input_ids, attention_mask, method=BertEncoder.sentence_embedding)

``emojax.convert.bert_rules`` maps ``BertModel`` / ``BertForMaskedLM`` state dicts onto the params.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn._checks import check_indices
from emojax.nn._config import config_from_dict
from emojax.nn.transformer import (
    activation_fn,
    check_attention_impl,
    dense,
    encoder_from_config,
    layer_norm,
    padding_mask,
)
from emojax.ops import l2_normalize  # the one implementation, shared with emojax.losses

Dtype = Any


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``BertConfig`` the encoder needs (defaults: MiniLM-L6-H384)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    pad_token_id: int = 0
    attention_impl: str = "xla"  # softmax attention: "xla" | "cudnn" | "pallas_flash"

    def __post_init__(self):
        check_attention_impl(self.attention_impl)

    @classmethod
    def from_dict(cls, config: dict) -> BertConfig:
        """Build from a Hugging Face ``config.json`` dict (unknown keys are ignored)."""
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"position_embedding_type={config['position_embedding_type']!r} is not supported; "
                "only 'absolute' BERT checkpoints convert"
            )
        return config_from_dict(cls, config)


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Mean over real tokens. ``hidden: [batch, length, dim]``, ``attention_mask: [batch, length]``.

    Returns ``[batch, dim]`` float32.
    """
    m = attention_mask.astype(jnp.float32)[..., None]
    total = jnp.sum(hidden.astype(jnp.float32) * m, axis=1)
    return total / jnp.maximum(jnp.sum(m, axis=1), 1e-9)


class BertEncoder(nn.Module):
    """Text encoder. ``input_ids, attention_mask, token_type_ids: [batch, length]`` int.

    ``with_pooler`` adds BERT's tanh pooler (``pooled_output``), ``with_mlm_head`` the
    ``BertForMaskedLM`` prediction head (decoder tied to the word embeddings).
    """

    config: BertConfig
    with_pooler: bool = False
    with_mlm_head: bool = False
    normalizer: str = "softmax"
    dtype: Dtype = jnp.float32
    remat: bool = False  # recompute block activations in the backward pass

    def setup(self):
        c = self.config
        embed = lambda n, name: nn.Embed(
            n,
            c.hidden_size,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
            embedding_init=nn.with_logical_partitioning(
                nn.initializers.normal(0.02),
                ("vocab" if name == "word_embeddings" else None, "embed"),
            ),
        )
        self.word_embeddings = embed(c.vocab_size, "word_embeddings")
        self.position_embeddings = embed(c.max_position_embeddings, "position_embeddings")
        self.token_type_embeddings = embed(c.type_vocab_size, "token_type_embeddings")
        self.embed_norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)
        self.embed_dropout = nn.Dropout(c.hidden_dropout_prob)
        self.encoder = encoder_from_config(
            c,
            pre_norm=False,
            normalizer=self.normalizer,
            dtype=self.dtype,
            remat=self.remat,
        )
        if self.with_pooler:
            self.pooler = dense(c.hidden_size, ("embed", "mlp"), dtype=self.dtype)
        if self.with_mlm_head:
            self.mlm_transform = dense(c.hidden_size, ("embed", "mlp"), dtype=self.dtype)
            self.mlm_norm = layer_norm(c.layer_norm_eps, dtype=self.dtype)
            self.mlm_bias = self.param(
                "mlm_bias",
                nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
                (c.vocab_size,),
                jnp.float32,
            )

    def _check(self, input_ids: jax.Array, attention_mask: jax.Array | None, token_type_ids):
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}")
        check_indices("input_ids", input_ids, self.config.vocab_size, "token ids, vocab_size")
        if token_type_ids is not None:
            if token_type_ids.shape != input_ids.shape:
                raise ValueError(
                    f"token_type_ids shape {token_type_ids.shape} != input_ids shape "
                    f"{input_ids.shape}"
                )
            types = self.config.type_vocab_size
            check_indices("token_type_ids", token_type_ids, types, "type_vocab_size")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}"
            )
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, train=False):
        """Returns the last hidden states ``[batch, length, hidden]``."""
        self._check(input_ids, attention_mask, token_type_ids)
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        positions = jnp.arange(input_ids.shape[1])[None, :]
        x = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(positions)
        )
        x = self.embed_dropout(self.embed_norm(x), deterministic=not train)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        hidden = self.encoder(x, padding_mask(attention_mask), train=train)
        if self.is_initializing():  # create the optional heads' params too
            if self.with_pooler:
                self.pooled_output(hidden)
            if self.with_mlm_head:
                self.mlm_logits(hidden[:, :1])
        return hidden

    def pooled_output(self, hidden: jax.Array) -> jax.Array:
        """BERT pooler: ``tanh(W hidden[:, 0] + b)`` -> ``[batch, hidden]``."""
        if not self.with_pooler:
            raise ValueError("this BertEncoder has no pooler; build it with with_pooler=True")
        return jnp.tanh(self.pooler(hidden[:, 0]))

    def mlm_logits(self, hidden: jax.Array, positions: jax.Array | None = None) -> jax.Array:
        """Masked-LM logits. ``hidden: [batch, length, hidden]``; ``positions: [batch, P]`` int
        (optional) restricts the vocabulary projection to those positions -> ``[batch, P, vocab]``,
        else ``[batch, length, vocab]``. Logits are float32."""
        if not self.with_mlm_head:
            raise ValueError("this BertEncoder has no MLM head; build it with with_mlm_head=True")
        if positions is not None:
            hidden = jnp.take_along_axis(hidden, positions[..., None], axis=1)
        h = activation_fn(self.config.hidden_act)(self.mlm_transform(hidden))
        h = self.mlm_norm(h)
        logits = self.word_embeddings.attend(h).astype(jnp.float32)
        return logits + self.mlm_bias

    def sentence_embedding(
        self, input_ids, attention_mask, token_type_ids=None, *, normalize: bool = True
    ) -> jax.Array:
        """Mean-pooled (and L2-normalised) sentence embedding ``[batch, hidden]`` (float32)."""
        pooled = mean_pool(self(input_ids, attention_mask, token_type_ids), attention_mask)
        return l2_normalize(pooled) if normalize else pooled
