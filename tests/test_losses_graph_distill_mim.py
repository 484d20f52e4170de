"""GRACE graph contrastive, Hinton KL and seed-002 distillation, MAE / SimMIM vs torch formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emojax.losses import (
    anp_distill_loss,
    distill_loss,
    graph_contrastive_loss,
    hinton_kl_loss,
    mae_loss,
    patchify,
    simmim_loss,
)

# torch/NumPy references and sharded runs round differently, and by CPU (AVX2 vs AVX-512
# kernels): a few ULPs of the O(1) losses and their gradients; formula bugs are >= 1e-3
ATOL = 2e-5
RTOL = 1e-5


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _torch_grads(fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = fn(*tensors)
    loss.backward()
    return loss.item(), [t.grad.numpy() for t in tensors]


def _torch_grace(z1, z2, tau, intra=True):
    """GRACE (Zhu et al. 2020) eq. 1-2 written from the paper."""

    def one_side(a, b):
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        between = torch.exp(a @ b.T / tau)
        denom = between.sum(1)
        if intra:
            refl = torch.exp(a @ a.T / tau)
            denom = denom + refl.sum(1) - refl.diag()
        return -torch.log(between.diag() / denom)

    return 0.5 * (one_side(z1, z2) + one_side(z2, z1)).mean()


@pytest.mark.parametrize("tau,intra", [(0.2, True), (0.5, False)])
def test_graph_contrastive_matches_grace(tau, intra):
    z1, z2 = _rand(11, 6), _rand(11, 6, seed=1)
    want, want_grads = _torch_grads(lambda a, b: _torch_grace(a, b, tau, intra), z1, z2)
    fn = lambda a, b: graph_contrastive_loss(a, b, temperature=tau, intra_view=intra)
    got, got_grads = jax.value_and_grad(fn, argnums=(0, 1))(z1, z2)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def test_graph_contrastive_node_mask_equals_subgraph():
    z1, z2 = _rand(10, 4), _rand(10, 4, seed=1)
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1, 1], bool)
    got = graph_contrastive_loss(z1, z2, node_mask=jnp.asarray(mask))
    want = graph_contrastive_loss(z1[mask], z2[mask])
    np.testing.assert_allclose(got, want, atol=1e-5)  # masked vs sliced: different sum order
    with pytest.raises(ValueError, match=r"node_mask must have shape \[nodes\]"):
        graph_contrastive_loss(z1, z2, node_mask=jnp.ones(9, bool))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        graph_contrastive_loss(z1, z2, temperature=0.0)
    with pytest.raises(ValueError, match="batch size mismatch"):
        graph_contrastive_loss(z1, z2[:8])


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_hinton_kl_matches_torch(temperature):
    s, t = _rand(6, 5), 3 * _rand(6, 5, seed=1)

    def torch_kl(st):
        log_p_s = F.log_softmax(st / temperature, dim=-1)
        p_t = F.softmax(torch.tensor(t) / temperature, dim=-1)
        return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2

    want, (want_grad,) = _torch_grads(torch_kl, s)
    got, got_grad = jax.value_and_grad(lambda a: hinton_kl_loss(a, t, temperature=temperature))(s)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got_grad, want_grad, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(distill_loss(s, t, temperature=temperature), got, rtol=1e-6)


@pytest.mark.parametrize("alpha,shape", [(1.0, (8,)), (0.3, (6, 3))])
def test_anp_distill_matches_paper_formula(alpha, shape):
    """Seed 002 eq. 1-3 with probabilities, as written: L = (alpha L_sp + L_r) / (1 + alpha)."""
    rng = np.random.default_rng(0)
    logits = (2 * rng.standard_normal(shape)).astype(np.float32)
    teacher = rng.random(shape).astype(np.float32)
    labels = (rng.random(shape) > 0.5).astype(np.float32)

    def torch_loss(lt):
        p_rn = torch.sigmoid(lt)
        l_sp = F.binary_cross_entropy(p_rn, torch.tensor(teacher))
        l_r = F.binary_cross_entropy(p_rn, torch.tensor(labels))
        return (alpha * l_sp + l_r) / (1 + alpha)

    want, (want_grad,) = _torch_grads(torch_loss, logits)
    fn = lambda a: anp_distill_loss(a, teacher, labels, alpha=alpha)
    got, got_grad = jax.value_and_grad(fn)(logits)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got_grad, want_grad, atol=ATOL, rtol=RTOL)
    by_name = distill_loss(logits, teacher, labels.astype(np.int32), method="anp", alpha=alpha)
    np.testing.assert_allclose(by_name, got, atol=1e-6, rtol=1e-6)


def test_distill_bad_inputs():
    s = _rand(4, 3)
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        hinton_kl_loss(s, s[:, :2])
    with pytest.raises(ValueError, match="labels shape"):
        anp_distill_loss(s, s, s[:, 0])
    with pytest.raises(ValueError, match="needs labels"):
        distill_loss(s, s, method="anp")
    with pytest.raises(ValueError, match='"hinton" or "anp"'):
        distill_loss(s, s, method="kd")
    with pytest.raises(ValueError, match="teacher_logits has 1 non-finite"):
        hinton_kl_loss(s, np.where(np.arange(12).reshape(4, 3) == 5, np.nan, s))


def _torch_mae(pred, imgs_nchw, mask, p, norm_pix):
    """MAE's forward_loss, written from the paper: patchify, optional norm, masked mean MSE."""
    n, c, h, w = imgs_nchw.shape
    x = imgs_nchw.reshape(n, c, h // p, p, w // p, p)
    target = torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_matches_torch(norm_pix):
    images = _rand(2, 8, 12, 3)  # NHWC, patch 4 -> 2 x 3 = 6 patches of 48
    pred = _rand(2, 6, 48, seed=1)
    mask = np.array([[1, 0, 1, 1, 0, 1], [0, 0, 1, 1, 1, 1]], np.float32)
    nchw = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
    want, (want_grad,) = _torch_grads(
        lambda pt: _torch_mae(pt, nchw, torch.tensor(mask), 4, norm_pix), pred
    )
    target = patchify(jnp.asarray(images), 4)
    got, got_grad = jax.value_and_grad(lambda a: mae_loss(a, target, mask, norm_pix=norm_pix))(pred)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got_grad, want_grad, atol=ATOL, rtol=RTOL)


def test_simmim_matches_torch_pixel_mask():
    """SimMIM's loss: L1 on pixels, patch mask upsampled to pixels, / (mask pixels) / channels."""
    images = _rand(2, 8, 8, 3)
    rec = _rand(2, 8, 8, 3, seed=1)
    mask = np.array([[1, 0, 0, 1], [0, 1, 1, 1]], np.float32)  # 2 x 2 patches of 4 x 4

    def torch_loss(rec_t):
        x = torch.tensor(images).permute(0, 3, 1, 2)
        r = rec_t.permute(0, 3, 1, 2)
        m = torch.tensor(mask).reshape(2, 2, 2)
        m = m.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).contiguous()
        loss = F.l1_loss(x, r, reduction="none")
        return (loss * m).sum() / (m.sum() + 1e-5) / 3

    want, (want_grad,) = _torch_grads(torch_loss, rec)
    fn = lambda r: simmim_loss(patchify(r, 4), patchify(jnp.asarray(images), 4), mask)
    got, got_grad = jax.value_and_grad(fn)(rec)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(got_grad, want_grad, atol=ATOL, rtol=RTOL)


def test_mim_bad_inputs():
    pred = jnp.zeros((2, 6, 48))
    with pytest.raises(ValueError, match=r"mask must be \[batch, patches\]"):
        mae_loss(pred, pred, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="use patchify"):
        simmim_loss(pred, pred[:, :, :10], jnp.ones((2, 6)))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        patchify(jnp.zeros((1, 10, 8, 3)), 4)


def test_losses_under_gspmd():
    """Batch-sharded inputs under jit on 8 devices give the unsharded values."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    put = lambda a: jax.device_put(a, NamedSharding(mesh, P("data")))
    z1, z2 = _rand(16, 6), _rand(16, 6, seed=1)
    s, t = _rand(16, 5, seed=2), _rand(16, 5, seed=3)
    pred, target = _rand(8, 6, 12, seed=4), _rand(8, 6, 12, seed=5)
    mask = (np.arange(48).reshape(8, 6) % 3 == 0).astype(np.float32)

    def total(z1, z2, s, t, pred, target, mask):
        return (
            graph_contrastive_loss(z1, z2)
            + hinton_kl_loss(s, t)
            + mae_loss(pred, target, mask, norm_pix=True)
            + simmim_loss(pred, target, mask)
        )

    args = (z1, z2, s, t, pred, target, mask)
    np.testing.assert_allclose(jax.jit(total)(*map(put, args)), total(*args), atol=ATOL, rtol=RTOL)
