"""MCN objectives: masked-margin softmax, online k-means clustering loss, reconstruction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emojax.losses import (
    cluster_loss,
    kmeans_assign,
    mms_loss,
    reconstruction_loss,
)

# torch/NumPy references and sharded runs round differently, and by CPU (AVX2 vs AVX-512
# kernels): a few ULPs of the O(1) losses and their gradients; formula bugs are >= 1e-3
ATOL = 2e-5
RTOL = 1e-5


def _emb(batch=10, dim=12, seed=0, names=("video", "audio", "text")):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal((batch, dim)).astype(np.float32) for n in names}


def _torch_grads(fn, arrays):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    loss = fn(tensors)
    loss.backward()
    grads = {
        k: np.zeros_like(v) if t.grad is None else t.grad.numpy()
        for (k, t), v in zip(tensors.items(), arrays.values(), strict=True)
    }
    return loss.item(), grads


def _torch_mms(t, pairs, delta=0.001):
    """MCN masked-margin softmax, written from the paper: S = a b^T - delta I, CE both ways."""
    total = 0.0
    for a, b in pairs:
        s = t[a] @ t[b].T - delta * torch.eye(t[a].shape[0])
        labels = torch.arange(s.shape[0])
        total = total + F.cross_entropy(s, labels) + F.cross_entropy(s.T, labels)
    return total


@pytest.mark.parametrize(
    "pairs", ["all", [("video", "text"), ("video", "audio")], [("audio", "text")]]
)
def test_mms_matches_torch(pairs):
    emb = _emb()
    ref_pairs = (
        [("video", "audio"), ("video", "text"), ("audio", "text")] if pairs == "all" else pairs
    )
    want, want_grads = _torch_grads(lambda t: _torch_mms(t, ref_pairs), emb)
    got, got_grads = jax.value_and_grad(lambda e: mms_loss(e, pairs=pairs))(emb)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for k in emb:
        np.testing.assert_allclose(got_grads[k], want_grads[k], atol=ATOL, rtol=RTOL)


def test_mms_margin_raises_loss():
    emb = _emb()
    assert mms_loss(emb, margin=0.5) > mms_loss(emb, margin=0.0)


def test_mms_bad_inputs():
    emb = _emb()
    with pytest.raises(ValueError, match="not in"):
        mms_loss(emb, pairs=[("video", "speech")])
    with pytest.raises(ValueError, match="at least two"):
        mms_loss({"video": emb["video"]})
    with pytest.raises(ValueError, match="batch size mismatch"):
        mms_loss({"video": emb["video"], "text": emb["text"][:7]})
    with pytest.raises(ValueError, match='"all"'):
        mms_loss(emb, pairs="some")


def test_cluster_loss_matches_torch():
    emb = _emb(batch=9, dim=6)
    rng = np.random.default_rng(1)
    centroids = rng.standard_normal((4, 6)).astype(np.float32)
    assign = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0])

    def torch_loss(t):
        c = torch.tensor(centroids)
        y = torch.tensor(assign)
        onehot = F.one_hot(y, 4).float()
        losses = [F.cross_entropy(t[k] @ c.T - 0.001 * onehot, y) for k in t]
        return sum(losses) / len(losses)

    want, want_grads = _torch_grads(torch_loss, emb)
    fn = lambda e: cluster_loss(e, centroids, assignments=jnp.asarray(assign))
    got, got_grads = jax.value_and_grad(fn)(emb)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for k in emb:
        np.testing.assert_allclose(got_grads[k], want_grads[k], atol=ATOL, rtol=RTOL)
    # no gradient flows into the centroids
    g_c = jax.grad(lambda c: cluster_loss(emb, c, assignments=jnp.asarray(assign)))(centroids)
    assert not np.any(np.asarray(g_c))


def test_cluster_default_assignment_is_nearest_fused_centroid():
    emb = _emb(batch=9, dim=6)
    centroids = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    fused = np.mean(np.stack(list(emb.values())), axis=0)
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    c = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    want_assign = np.argmax(fused @ c.T, axis=1)
    np.testing.assert_array_equal(kmeans_assign(centroids, fused), want_assign)
    np.testing.assert_allclose(
        cluster_loss(emb, centroids),
        cluster_loss(emb, centroids, assignments=jnp.asarray(want_assign)),
        rtol=1e-6,
    )


# k-means (kmeans_step / kmeans_fit / kmeans_plusplus, the queue, bad inputs): tests/test_kmeans.py


def test_reconstruction_matches_torch():
    rng = np.random.default_rng(0)
    rec = {"video": rng.standard_normal((5, 7)), "audio": rng.standard_normal((5, 3))}
    tgt = {"video": rng.standard_normal((5, 7)), "audio": rng.standard_normal((5, 3))}
    rec = {k: v.astype(np.float32) for k, v in rec.items()}
    tgt = {k: v.astype(np.float32) for k, v in tgt.items()}
    want, want_grads = _torch_grads(
        lambda t: sum(F.mse_loss(t[k], torch.tensor(tgt[k])) for k in t), rec
    )
    got, got_grads = jax.value_and_grad(lambda r: reconstruction_loss(r, tgt))(rec)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    for k in rec:
        np.testing.assert_allclose(got_grads[k], want_grads[k], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(
        reconstruction_loss(rec, tgt, reduction="mean"), want / 2, atol=ATOL, rtol=RTOL
    )
    with pytest.raises(ValueError, match="modalities differ"):
        reconstruction_loss(rec, {"video": tgt["video"]})
    with pytest.raises(ValueError, match="audio: reconstruction shape"):
        reconstruction_loss(rec, {"video": tgt["video"], "audio": tgt["audio"][:, :2]})
    bad = dict(rec, audio=np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"reconstructions\[audio\] has 15 non-finite"):
        reconstruction_loss(bad, tgt)


def test_mcn_losses_under_gspmd():
    """Batch-sharded inputs under jit on 8 devices give the unsharded values."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    emb = _emb(batch=16, dim=8)
    sharded = {k: jax.device_put(v, NamedSharding(mesh, P("data"))) for k, v in emb.items()}
    centroids = jnp.asarray(_emb(batch=5, dim=8, seed=3)["video"])
    recon = {k: v + 0.1 for k, v in emb.items()}

    def total(e):
        return mms_loss(e) + cluster_loss(e, centroids) + reconstruction_loss(recon, e)

    want = total(emb)
    np.testing.assert_allclose(jax.jit(total)(sharded), want, atol=ATOL, rtol=RTOL)
