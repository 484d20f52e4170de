"""Pseudo-log-likelihood (PLL) scoring with a masked language model (Salazar et al., 2020).

    PLL(W) = sum_t log P_MLM(w_t | W without w_t)

Every scorable token of every sentence is masked once; all masked copies of the batch go through
the encoder together in one jitted call, and the vocabulary log-softmax is computed only at the
masked position of each copy (not at all L positions), which is what makes batching cheap.
EmoSense uses it to rank candidate words for a slot (the seed fills the pronoun "it" of a caption
with the caption's nouns: the candidate whose completed sentence has the highest PLL wins).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# encode_fn(input_ids [n, L], attention_mask [n, L]) -> hidden states [n, L, hidden]
EncodeFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
# head_fn(hidden [m, hidden]) -> vocabulary logits [m, vocab]
HeadFn = Callable[[jnp.ndarray], jnp.ndarray]


def masked_copies(input_ids: jnp.ndarray, mask_token_id: int) -> jnp.ndarray:
    """One copy of each sentence per position, with that position masked.

    input_ids: [batch, L] int -> [batch, L, L]: copies[b, t] is sentence b with token t masked.
    """
    length = input_ids.shape[1]
    eye = jnp.eye(length, dtype=bool)
    return jnp.where(eye[None], mask_token_id, input_ids[:, None, :])


def token_log_probs(
    encode_fn: EncodeFn,
    head_fn: HeadFn,
    input_ids: jnp.ndarray,
    attention_mask: jnp.ndarray,
    scorable: jnp.ndarray,
    mask_token_id: int,
) -> jnp.ndarray:
    """log P_MLM(w_t | W without t) for every position: [batch, L] (0 where not scorable).

    input_ids, attention_mask, scorable: [batch, L]. One encoder call on batch*L masked copies;
    the head and the log-softmax run only on the batch*L masked positions.
    """
    batch, length = input_ids.shape
    copies = masked_copies(input_ids, mask_token_id)
    flat_ids = copies.reshape(batch * length, length)
    flat_mask = jnp.repeat(attention_mask, length, axis=0)
    hidden = encode_fn(flat_ids, flat_mask)  # [batch*L, L, H]
    positions = jnp.tile(jnp.arange(length), batch)
    at_mask = hidden[jnp.arange(batch * length), positions]  # [batch*L, H]
    log_probs = jax.nn.log_softmax(head_fn(at_mask).astype(jnp.float32), axis=-1)
    targets = input_ids.reshape(-1)
    picked = jnp.take_along_axis(log_probs, targets[:, None], axis=-1)[:, 0]
    return jnp.where(scorable, picked.reshape(batch, length), 0.0)


def pll_scores(
    encode_fn: EncodeFn,
    head_fn: HeadFn,
    input_ids: jnp.ndarray,
    attention_mask: jnp.ndarray,
    scorable: jnp.ndarray,
    mask_token_id: int,
) -> jnp.ndarray:
    """Sentence PLL scores: [batch] = sum over scorable t of log P(w_t | W without t)."""
    return token_log_probs(
        encode_fn, head_fn, input_ids, attention_mask, scorable, mask_token_id
    ).sum(axis=-1)


def scorable_positions(
    input_ids: np.ndarray, attention_mask: np.ndarray, special_ids: Sequence[int]
) -> np.ndarray:
    """Positions that count in the PLL: real, non-special tokens (not [CLS]/[SEP]/pad): [b, L]."""
    special = np.isin(np.asarray(input_ids), np.asarray(list(special_ids)))
    return np.asarray(attention_mask).astype(bool) & ~special


def rank_slot_candidates(
    template: str,
    candidates: Sequence[str],
    tokenizer,
    score_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], jnp.ndarray],
    *,
    slot: str = "{}",
) -> list[tuple[str, float]]:
    """Fill ``slot`` of ``template`` with each candidate and rank the sentences by PLL.

    tokenizer: a Hugging Face tokenizer (``__call__`` with padding, ``all_special_ids``);
    score_fn(input_ids, attention_mask, scorable) -> [n] PLL scores (e.g. a jitted
    :func:`pll_scores` with the encoder bound). Returns [(candidate, score)] best first.
    """
    if slot not in template:
        raise ValueError(f"rank_slot_candidates: template {template!r} has no slot {slot!r}")
    if not candidates:
        raise ValueError("rank_slot_candidates: candidates is empty; give at least one word")
    sentences = [template.replace(slot, word, 1) for word in candidates]
    encoded = tokenizer(sentences, padding=True, return_tensors="np")
    ids = encoded["input_ids"].astype(np.int32)
    mask = encoded["attention_mask"].astype(np.int32)
    scorable = scorable_positions(ids, mask, tokenizer.all_special_ids)
    scores = np.asarray(score_fn(ids, mask, scorable))
    order = np.argsort(-scores, kind="stable")
    return [(candidates[i], float(scores[i])) for i in order]
