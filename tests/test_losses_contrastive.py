"""clip_loss, siglip_loss, multi_positive_nce: parity with open_clip and torch formulas, errors."""

import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emojax.losses import (
    check_finite,
    clip_loss,
    clip_loss_multi,
    multi_positive_nce,
    siglip_loss,
)

# torch/NumPy references and sharded runs round differently, and by CPU (AVX2 vs AVX-512
# kernels): a few ULPs of the O(1) losses and their gradients; formula bugs are >= 1e-3
ATOL = 2e-5
RTOL = 1e-5


def open_clip_loss_module():
    """open_clip's ``loss.py`` loaded from its file (the package ``__init__`` needs torchvision).

    The module imports only torch (torch.distributed and horovod inside try blocks), so nothing
    has to be stubbed.
    """
    site = pathlib.Path(torch.__file__).parent.parent
    path = site / "open_clip" / "loss.py"
    spec = importlib.util.spec_from_file_location("open_clip_loss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def oc():
    return open_clip_loss_module()


def _data(batch=12, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, dim)).astype(np.float32),
        rng.standard_normal((batch, dim)).astype(np.float32),
    )


def _torch_grads(loss_fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = loss_fn(*tensors)
    loss.backward()
    return loss.item(), [None if t.grad is None else t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("log_scale,bias", [(math.log(1 / 0.07), None), (2.3, 0.7), (5.0, None)])
def test_clip_matches_open_clip(oc, log_scale, bias):
    x, y = _data()
    ref_loss = oc.ClipLoss()

    def torch_loss(xt, yt, ls, b):
        scale = ls.exp().clamp(max=100.0)  # open_clip clamps the scale at 100 in its train loop
        return ref_loss(F.normalize(xt, dim=-1), F.normalize(yt, dim=-1), scale, b)

    b0 = np.float32(0.0 if bias is None else bias)
    args = (x, y, np.float32(log_scale), b0)
    want, want_grads = _torch_grads(
        lambda a, c, ls, b: torch_loss(a, c, ls, None if bias is None else b), *args
    )
    fn = lambda a, c, ls, b: clip_loss(a, c, ls, bias=None if bias is None else b)
    got, got_grads = jax.value_and_grad(fn, argnums=(0, 1, 2, 3))(*args)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for g, w in zip(got_grads[:3], want_grads[:3], strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)
    if bias is not None:
        np.testing.assert_allclose(got_grads[3], want_grads[3], atol=ATOL, rtol=RTOL)


def test_clip_scale_clamped_at_max():
    x, y = _data()
    at_max = clip_loss(x, y, math.log(100.0))
    np.testing.assert_allclose(clip_loss(x, y, 8.0), at_max, atol=1e-5)
    assert float(jax.grad(lambda s: clip_loss(x, y, s))(8.0)) == 0.0
    assert not np.isclose(clip_loss(x, y, 8.0, max_scale=None), at_max)


def test_clip_soft_targets_match_torch():
    x, y = _data(batch=10)
    rng = np.random.default_rng(3)
    targets = rng.random((10, 10)).astype(np.float32)

    def torch_loss(xt, yt):
        logits = 4.0 * F.normalize(xt, dim=-1) @ F.normalize(yt, dim=-1).T
        t = torch.tensor(targets)
        rows = F.cross_entropy(logits, t / t.sum(1, keepdim=True))
        cols = F.cross_entropy(logits.T, (t / t.sum(0, keepdim=True)).T)
        return (rows + cols) / 2

    want, want_grads = _torch_grads(torch_loss, x, y)
    fn = lambda a, b: clip_loss(a, b, math.log(4.0), targets=jnp.asarray(targets))
    got, got_grads = jax.value_and_grad(fn, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)
    # identity targets reproduce the paired loss
    np.testing.assert_allclose(
        clip_loss(x, y, 2.0, targets=jnp.eye(10)), clip_loss(x, y, 2.0), atol=1e-5
    )


def test_clip_multi_averages_pairs():
    x, y = _data()
    z, _ = _data(seed=5)
    emb = {"audio": x, "text": y, "senses": z}
    want = (clip_loss(x, y, 2.0) + clip_loss(x, z, 2.0) + clip_loss(y, z, 2.0)) / 3
    np.testing.assert_allclose(clip_loss_multi(emb, 2.0), want, atol=1e-5)
    one = clip_loss_multi(emb, 2.0, pairs=[("senses", "text")])
    np.testing.assert_allclose(one, clip_loss(z, y, 2.0), atol=1e-5)
    with pytest.raises(ValueError, match="not in"):
        clip_loss_multi(emb, 2.0, pairs=[("audio", "video")])


@pytest.mark.parametrize("log_scale,bias", [(math.log(10.0), -10.0), (1.5, 0.3)])
def test_siglip_matches_open_clip(oc, log_scale, bias):
    x, y = _data(batch=10, dim=8, seed=1)
    ref_loss = oc.SigLipLoss()

    def torch_loss(xt, yt, ls, b):
        return ref_loss(F.normalize(xt, dim=-1), F.normalize(yt, dim=-1), ls.exp(), b)

    args = (x, y, np.float32(log_scale), np.float32(bias))
    want, want_grads = _torch_grads(torch_loss, *args)
    got, got_grads = jax.value_and_grad(siglip_loss, argnums=(0, 1, 2, 3))(*args)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def _torch_supcon(feats, labels, scale):
    """Khosla et al. L_out, written from the paper's formula."""
    f = F.normalize(feats, dim=-1)
    logits = scale * f @ f.T
    n = f.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / pos.sum(1).clamp(min=1)
    has = pos.sum(1) > 0
    return per_anchor[has].mean()


def test_multi_positive_single_modality_matches_supcon():
    x, _ = _data(batch=12)
    labels = np.array([0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 4, 0])  # 3 and 4 have no positive
    want, want_grads = _torch_grads(lambda t: _torch_supcon(t, torch.tensor(labels), 10.0), x)
    fn = lambda a: multi_positive_nce(a, None, jnp.asarray(labels), math.log(10.0))
    got, got_grad = jax.value_and_grad(fn)(x)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got_grad, want_grads[0], atol=ATOL, rtol=RTOL)


def test_multi_positive_cross_modal_and_soft_labels():
    x, y = _data(batch=8)
    labels = jnp.array([0, 1, 0, 2, 1, 0, 2, 3])
    w = (labels[:, None] == labels[None, :]).astype(jnp.float32)
    np.testing.assert_allclose(
        multi_positive_nce(x, y, labels, 2.0), clip_loss(x, y, 2.0, targets=w), atol=1e-5
    )
    onehot = jax.nn.one_hot(labels, 4)  # one-hot soft labels == hard labels
    np.testing.assert_allclose(
        multi_positive_nce(x, y, onehot, 2.0), multi_positive_nce(x, y, labels, 2.0), atol=1e-5
    )
    # all-distinct labels reduce to the paired CLIP loss
    np.testing.assert_allclose(
        multi_positive_nce(x, y, jnp.arange(8), 2.0), clip_loss(x, y, 2.0), atol=1e-5
    )


def test_contrastive_losses_under_gspmd():
    """Globally sharded inputs under jit (XLA partitions the dense loss) give the same value."""
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, y = _data(batch=16)
    xs, ys = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, y))
    for fn in (
        lambda a, b: clip_loss(a, b, 2.0),
        lambda a, b: siglip_loss(a, b, 2.0, -1.0),
        lambda a, b: multi_positive_nce(a, b, jnp.arange(16) % 3, 2.0),
    ):
        want = jax.value_and_grad(fn, argnums=(0, 1))(x, y)
        got = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(xs, ys)
        np.testing.assert_allclose(got[0], want[0], atol=ATOL, rtol=RTOL)
        for g, w in zip(got[1], want[1], strict=True):
            np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def test_bad_inputs_raise_clear_errors():
    x, y = _data(batch=8)
    with pytest.raises(ValueError, match="batch size mismatch"):
        clip_loss(x, y[:6], 2.0)
    with pytest.raises(ValueError, match="width mismatch"):
        siglip_loss(x, y[:, :5], 2.0, -10.0)
    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        clip_loss(x[None], y[None], 2.0)
    with pytest.raises(ValueError, match="targets must have shape"):
        clip_loss(x, y, 2.0, targets=jnp.eye(7))
    with pytest.raises(ValueError, match="log_scale must be a scalar"):
        clip_loss(x, y, jnp.ones(2))
    with pytest.raises(ValueError, match="labels has 5 entries"):
        multi_positive_nce(x, y, jnp.arange(5), 2.0)
    with pytest.raises(ValueError, match="labels must be integer"):
        multi_positive_nce(x, y, jnp.zeros((8, 2, 2)), 2.0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        clip_loss(bad, y, 2.0)
    with pytest.raises(ValueError, match="y has 1 non-finite"):
        siglip_loss(x, np.where(np.isnan(bad), np.inf, y), 2.0, -10.0)
    with pytest.raises(ValueError, match="emb has 1 non-finite"):
        check_finite(emb=bad)
    # under jit no data-dependent check can run: the loss comes back NaN for the trainer to see
    assert np.isnan(jax.jit(lambda a, b: clip_loss(a, b, 2.0))(bad, y))
