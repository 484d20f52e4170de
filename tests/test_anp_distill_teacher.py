"""The ANP teacher's encoder (block and whole RegionTextEncoder) against PyTorch's
``nn.TransformerEncoder`` with converted weights; conversion errors; P_SB combination."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks.torch_anp_distill import TorchTeacher
from emojax.convert import ConversionError
from emojax.models.anp_distill.convert import convert_teacher
from emojax.models.anp_distill.data import TOKENS
from emojax.models.anp_distill.model import RegionTextEncoder, combine_regions
from emojax.nn.transformer import EncoderBlock

VOCAB, DIM, HEADS, MLP, CLASSES = 50, 10, 2, 24, 2


def _tokens(rng, n=6):
    tokens = rng.integers(2, VOCAB, size=(n, TOKENS))
    lengths = rng.integers(0, TOKENS - 1, size=n)  # real tokens before the end token
    for i, k in enumerate(lengths):
        tokens[i, : TOKENS - 1 - k] = 0
    tokens[:, -1] = 1
    return tokens


@pytest.mark.parametrize("layers", [1, 2])
def test_teacher_matches_torch_transformer_encoder(layers):
    torch.manual_seed(layers)
    ref = TorchTeacher(VOCAB, DIM, layers, HEADS, MLP, CLASSES, TOKENS).eval()
    module = RegionTextEncoder(VOCAB, CLASSES, DIM, layers, HEADS, MLP, 0.0, TOKENS)
    params = convert_teacher(ref.state_dict(), module)
    tokens = _tokens(np.random.default_rng(layers))
    with torch.no_grad():
        want = ref(torch.from_numpy(tokens)).numpy()
    got = module.apply({"params": params}, jnp.asarray(tokens, jnp.int32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    # leading region axes are kept: [B, R, L] -> [B, R, C]
    got3 = module.apply({"params": params}, jnp.asarray(tokens.reshape(2, 3, TOKENS), jnp.int32))
    np.testing.assert_allclose(np.asarray(got3).reshape(6, CLASSES), want, rtol=1e-4, atol=1e-5)


def test_encoder_block_matches_torch_layer_with_padding_mask():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(
        DIM, HEADS, MLP, dropout=0.0, activation="relu", batch_first=True, norm_first=False
    ).eval()
    ref = TorchTeacher(VOCAB, DIM, 1, HEADS, MLP, CLASSES, TOKENS)
    ref.encoder.layers[0].load_state_dict(layer.state_dict())
    params = convert_teacher(
        ref.state_dict(), RegionTextEncoder(VOCAB, CLASSES, DIM, 1, HEADS, MLP)
    )
    block = EncoderBlock(HEADS, MLP, pre_norm=False, activation="relu", layer_norm_eps=1e-5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, TOKENS, DIM)).astype(np.float32)
    pad = _tokens(rng, 5) == 0
    with torch.no_grad():
        want = layer(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    got = block.apply(
        {"params": params["encoder"]["layer_0"]}, jnp.asarray(x), jnp.asarray(~pad)[:, None, None]
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_conversion_names_missing_and_misshaped_tensors():
    ref = TorchTeacher(VOCAB, DIM, 1, HEADS, MLP, CLASSES, TOKENS)
    state = dict(ref.state_dict())
    del state["head.bias"]
    state["embed.weight"] = torch.zeros(VOCAB + 1, DIM)
    with pytest.raises(ConversionError, match=r"head\.bias[\s\S]*embed\.weight"):
        convert_teacher(state, RegionTextEncoder(VOCAB, CLASSES, DIM, 1, HEADS, MLP))


def test_combine_regions_weights_fallbacks():
    probs = jnp.asarray([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]] * 3)
    weights = jnp.asarray([[0.6, 0.2, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    mask = jnp.asarray([[1, 1, 0], [1, 1, 0], [0, 0, 0]], jnp.float32)
    got = np.asarray(combine_regions(probs, weights, mask))
    np.testing.assert_allclose(
        got[0], (0.6 * np.array([0.9, 0.1]) + 0.2 * np.array([0.2, 0.8])) / 0.8, rtol=1e-6
    )
    np.testing.assert_allclose(got[1], [0.55, 0.45], rtol=1e-6)  # no saliency: plain mean
    np.testing.assert_allclose(got[2], [0.5, 0.5], rtol=1e-6)  # no region: uniform
    assert np.all(np.isfinite(got))
    jax.grad(lambda p: combine_regions(p, weights, mask).sum())(probs)
