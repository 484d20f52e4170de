"""EmoSense building blocks: complex-plane composition, PLL scoring, per-person adjustment."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emojax.models.emosense import pll
from emojax.models.emosense.compose import (
    NUM_SENSES,
    ComplexComposition,
    compose_senses,
    learned_weights,
)

# ---------------------------------------------------------------- composition


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 16),
    weight=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**16),
)
def test_equal_weights_on_identical_vectors_cancel(dim, weight, seed):
    v = np.random.default_rng(seed).normal(size=(dim,)).astype(np.float32)
    senses = jnp.broadcast_to(v, (NUM_SENSES, dim))
    real, imag = compose_senses(senses, jnp.full((NUM_SENSES,), weight))
    scale = weight * (np.abs(v).max() + 1.0)
    np.testing.assert_allclose(real, 0.0, atol=1e-5 * scale)
    np.testing.assert_allclose(imag, 0.0, atol=1e-5 * scale)


def test_composition_matches_numpy_complex_arithmetic():
    rng = np.random.default_rng(0)
    senses = rng.normal(size=(3, NUM_SENSES, 7)).astype(np.float32)
    weights = rng.uniform(0.1, 2.0, size=(3, NUM_SENSES)).astype(np.float32)
    zeta = np.exp(2j * np.pi / NUM_SENSES)
    expected = np.einsum("bk,k,bkd->bd", weights, zeta ** np.arange(NUM_SENSES), senses)
    real, imag = compose_senses(jnp.asarray(senses), jnp.asarray(weights))
    np.testing.assert_allclose(real, expected.real, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(imag, expected.imag, atol=1e-5, rtol=1e-5)


def test_one_sense_alone_points_along_its_root():
    senses = np.zeros((NUM_SENSES, 2), np.float32)
    senses[2] = [1.0, 0.0]  # touch only
    real, imag = compose_senses(jnp.asarray(senses), jnp.ones(NUM_SENSES))
    angle = np.arctan2(float(imag[0]), float(real[0]))
    np.testing.assert_allclose(np.mod(angle, 2 * np.pi), 2 * 2 * np.pi / 5, atol=5e-6)


def test_composition_module_learns_weights_and_accepts_given_ones():
    module = ComplexComposition(out_dim=4)
    senses = jnp.ones((2, NUM_SENSES, 3))
    variables = module.init(jax.random.key(0), senses)
    np.testing.assert_allclose(learned_weights(variables["params"]), 1.0, atol=1e-4)
    # identical senses + equal learned weights: only the projection bias is left
    out = module.apply(variables, senses)
    np.testing.assert_allclose(
        out, jnp.broadcast_to(variables["params"]["project"]["bias"], out.shape), atol=1e-5
    )
    steered = module.apply(variables, senses, jnp.array([3.0, 1, 1, 1, 1]))
    assert not np.allclose(steered, out)


def test_composition_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\[\.\.\., 5, dim\]"):
        compose_senses(jnp.ones((2, 4, 3)), jnp.ones(5))
    with pytest.raises(ValueError, match="weights"):
        compose_senses(jnp.ones((2, 5, 3)), jnp.ones(4))


# ---------------------------------------------------------------- PLL


class TinyMaskedLM(nn.Module):
    """Embedding + one self-attention mixing layer + vocabulary head (context matters)."""

    vocab: int = 17
    dim: int = 8

    def setup(self):
        self.embed = nn.Embed(self.vocab, self.dim)
        self.pos = self.param("pos", nn.initializers.normal(1.0), (12, self.dim))
        self.attn = nn.SelfAttention(num_heads=2, qkv_features=self.dim)
        self.head = nn.Dense(self.vocab)

    def encode(self, ids, mask):
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        return x + self.attn(x, mask=nn.make_attention_mask(mask, mask))

    def __call__(self, ids, mask):
        return self.head(self.encode(ids, mask))


@pytest.fixture(scope="module")
def tiny_mlm():
    model = TinyMaskedLM()
    ids = jnp.zeros((1, 6), jnp.int32)
    variables = model.init(jax.random.key(1), ids, jnp.ones_like(ids))
    encode = lambda i, m: model.apply(variables, i, m, method=TinyMaskedLM.encode)
    head = lambda h: model.apply(variables, h, method=lambda mdl, h: mdl.head(h))
    full = lambda i, m: model.apply(variables, i, m)
    return encode, head, full


MASK_ID = 3


def direct_pll(full, ids, mask, scorable):
    """One forward pass per masked position, full-vocabulary log-softmax at every position."""
    out = np.zeros(ids.shape[0])
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if not scorable[b, t]:
                continue
            masked = ids[b : b + 1].copy()
            masked[0, t] = MASK_ID
            logp = jax.nn.log_softmax(full(jnp.asarray(masked), jnp.asarray(mask[b : b + 1])))
            out[b] += float(logp[0, t, ids[b, t]])
    return out


def test_pll_batched_matches_per_position(tiny_mlm):
    encode, head, full = tiny_mlm
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 17, size=(3, 6)).astype(np.int32)
    ids[:, 0] = 1  # [CLS]
    mask = np.ones_like(ids)
    mask[1, 4:] = 0  # padded sentence
    ids[1, 4:] = 0
    ids[:, -1] = np.where(mask[:, -1] == 1, 2, 0)  # [SEP]
    scorable = pll.scorable_positions(ids, mask, special_ids=[0, 1, 2])
    score = jax.jit(lambda i, m, s: pll.pll_scores(encode, head, i, m, s, MASK_ID))
    got = np.asarray(score(ids, mask, scorable))
    np.testing.assert_allclose(got, direct_pll(full, ids, mask, scorable), rtol=1e-5, atol=1e-5)
    assert np.all(got < 0)


class WordTokenizer:
    """Whitespace tokenizer with the Hugging Face call signature used by rank_slot_candidates."""

    all_special_ids = [0, 1, 2]

    def __init__(self, words):
        self.ids = {w: i + 5 for i, w in enumerate(words)}

    def __call__(self, sentences, padding, return_tensors):
        rows = [[1] + [self.ids[w] for w in s.split()] + [2] for s in sentences]
        length = max(map(len, rows))
        ids = np.array([r + [0] * (length - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)}


def test_rank_slot_candidates_orders_by_pll(tiny_mlm):
    encode, head, full = tiny_mlm
    tok = WordTokenizer(["a", "tall", "tower", "street", "night", "lights"])
    score = jax.jit(lambda i, m, s: pll.pll_scores(encode, head, i, m, s, MASK_ID))
    ranked = pll.rank_slot_candidates("a tall {} night", ["tower", "street", "lights"], tok, score)
    assert sorted(w for w, _ in ranked) == ["lights", "street", "tower"]
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    for word, s in ranked:
        enc = tok([f"a tall {word} night"], True, "np")
        sc = pll.scorable_positions(enc["input_ids"], enc["attention_mask"], tok.all_special_ids)
        np.testing.assert_allclose(
            s, direct_pll(full, enc["input_ids"], enc["attention_mask"], sc)[0], rtol=1e-5
        )
    with pytest.raises(ValueError, match="no slot"):
        pll.rank_slot_candidates("no slot here", ["a"], tok, score)
    with pytest.raises(ValueError, match="empty"):
        pll.rank_slot_candidates("a {}", [], tok, score)


# ---------------------------------------------------------------- per-person adjustment


def test_personal_index_pulls_prediction_towards_own_examples():
    from emojax.models.emosense.adjust import PersonalIndex

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 6)).astype(np.float32)
    emo = np.zeros((20, 4), np.float32)
    emo[:, 1] = 1.0  # this person feels emotion 1 in all their situations
    index = PersonalIndex(emb, emo)
    model = np.full((3, 4), 0.25, np.float32)
    adjusted = index.adjust(model, emb[:3] + 0.01, k=3, blend=0.6)
    np.testing.assert_allclose(adjusted.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(adjusted[:, 1], 0.4 * 0.25 + 0.6, atol=1e-5)
    # blend 0 keeps the model; a far-away query with min_similarity keeps the model too
    np.testing.assert_allclose(index.adjust(model, emb[:3], blend=0.0), model)
    far = -emb[:1]
    np.testing.assert_allclose(index.adjust(model[:1], far, min_similarity=0.99), model[:1])


def test_personal_index_weights_neighbours_by_similarity():
    from emojax.models.emosense.adjust import PersonalIndex

    emb = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    emo = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    index = PersonalIndex(emb, emo)
    query = np.array([[0.9, 0.1]], np.float32)
    out = index.adjust(np.array([[0.5, 0.5]]), query, k=2, blend=1.0, temperature=0.1)
    q = query / np.linalg.norm(query)
    w = np.exp(q @ emb.T / 0.1)
    np.testing.assert_allclose(out, w / w.sum(), atol=1e-5)


def test_personal_index_save_load_and_errors(tmp_path):
    from emojax.models.emosense.adjust import PersonalIndex

    emb = np.eye(3, dtype=np.float32)
    index = PersonalIndex(emb, np.eye(3, dtype=np.float32))
    index.save(str(tmp_path))
    again = PersonalIndex.load(str(tmp_path))
    np.testing.assert_array_equal(again.embeddings, emb)
    with pytest.raises(FileNotFoundError, match="no personal index"):
        PersonalIndex.load(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="one emotion distribution per example"):
        PersonalIndex(emb, np.eye(2, dtype=np.float32)[[0, 1]])
    with pytest.raises(ValueError, match="probability distributions"):
        PersonalIndex(emb, np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"queries must be \[batch, 3\]"):
        index.adjust(np.eye(3), np.ones((1, 4)))
    with pytest.raises(ValueError, match="blend"):
        index.adjust(np.eye(3), emb, blend=1.5)
