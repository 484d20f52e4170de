"""Joyful vs a PyTorch + torch_geometric model of the same structure with converted weights:
fusion, context, graph + classifier, the whole forward; the contrast vs GRACE written in torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_joyful as tj
from emojax.losses import graph_contrastive_loss
from emojax.models.joyful.graph import collate
from emojax.models.joyful.model import JoyfulModel, basis_attention

DIMS = {"audio": 5, "text": 7, "visual": 6}
CFG = dict(
    local_dim=8,
    hidden=12,
    code=6,
    layers=2,
    heads=3,
    mlp=16,
    out=10,
    n_speakers=3,
    graph_heads=2,
    classifier_hidden=9,
    num_classes=4,
)
TOL = dict(rtol=1e-4, atol=1e-5)


def _dialogues(seed=0, lengths=(5, 9, 1, 7)):
    rng = np.random.default_rng(seed)
    return [
        {
            **{m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()},
            "speaker": rng.integers(0, CFG["n_speakers"], n),
            "label": rng.integers(0, CFG["num_classes"], n),
        }
        for n in lengths
    ]


@pytest.fixture(scope="module")
def setup():
    batch = collate(
        _dialogues(),
        max_len=10,
        n_speakers=3,
        past=2,
        future=3,
        modalities=tuple(DIMS),
        num_classes=4,
    )
    model = JoyfulModel(
        modalities=tuple(DIMS),
        num_classes=4,
        fusion="code",
        local_dim=8,
        ae_hidden=12,
        ae_code=6,
        context_layers=2,
        context_heads=3,
        context_mlp=16,
        context_out=10,
        n_speakers=3,
        graph_heads=2,
        classifier_hidden=9,
        dropout_rate=0.0,
    )
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0)}, b, train=False))(batch)
    # non-trivial biases and BatchNorm statistics
    rng = np.random.default_rng(1)
    variables = jax.tree.map(lambda x: np.asarray(x) + 0.1 * rng.normal(size=x.shape), variables)
    stats = variables["batch_stats"]["gnn"]["norm"]
    stats["var"] = np.abs(stats["var"]) + 0.5
    variables = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), variables)
    peer = tj.TorchJoyful(
        DIMS,
        num_classes=4,
        local_dim=8,
        hidden=12,
        code=6,
        layers=2,
        heads=3,
        mlp=16,
        out=10,
        n_speakers=3,
        graph_heads=2,
        classifier_hidden=9,
    )
    peer.load_state_dict(
        tj.state_dict_from_flax(variables["params"], variables["batch_stats"], tuple(DIMS), 2)
    )
    peer.eval()
    return batch, model, variables, peer, tj.torch_batch(batch, tuple(DIMS))


def _context(mdl, x, mask):
    return mdl.context(x, mask)


def _np(t):
    return t.detach().numpy()


def test_basis_attention_chunked_equals_whole():
    rng = np.random.default_rng(0)
    b, x = jnp.asarray(rng.normal(size=8)), jnp.asarray(rng.normal(size=(11, 8)))
    chunked = jax.jit(lambda b, x: basis_attention(b, x, chunk=3))(b, x)
    np.testing.assert_allclose(chunked, jax.jit(basis_attention)(b, x), **TOL)


def test_fusion_matches_torch(setup):
    batch, model, variables, peer, tb = setup
    (fused, loss), _ = model.apply(
        variables,
        {m: jnp.asarray(batch[m]) for m in DIMS},
        jnp.asarray(batch["utt_mask"]),
        method=lambda mdl, x, mask: mdl.fuse(x, mask),
        mutable=True,
    )
    with torch.no_grad():
        ref, ref_loss = peer.fuse({m: tb[m] for m in DIMS})
    np.testing.assert_allclose(fused, _np(ref), **TOL)
    np.testing.assert_allclose(loss, _np(ref_loss), **TOL)


def test_context_matches_torch_on_real_utterances(setup):
    batch, model, variables, peer, tb = setup
    mask = np.asarray(batch["utt_mask"])
    x = jax.random.normal(jax.random.key(3), mask.shape + (12,))
    context = jax.jit(lambda x: model.apply(variables, x, jnp.asarray(mask), method=_context))
    ours = context(x)
    with torch.no_grad():
        ref = peer.context(torch.tensor(np.asarray(x)), tb["utt_mask"])
    np.testing.assert_allclose(np.asarray(ours)[mask], _np(ref)[mask], **TOL)
    # padding positions never change a real utterance's output
    x2 = jnp.where(jnp.asarray(mask)[..., None], x, 100.0)
    ours2 = context(x2)
    np.testing.assert_allclose(np.asarray(ours2)[mask], np.asarray(ours)[mask], **TOL)


def test_whole_forward_matches_torch(setup):
    batch, model, variables, peer, tb = setup
    out = jax.jit(lambda b: model.apply(variables, b, train=False))(batch)
    with torch.no_grad():
        logits, fusion, h, _ = peer(tb)
    mask = np.asarray(batch["utt_mask"])
    np.testing.assert_allclose(np.asarray(out["rgcn"])[mask.reshape(-1)], _np(h), **TOL)
    np.testing.assert_allclose(np.asarray(out["logits"])[mask], _np(logits), **TOL)
    np.testing.assert_allclose(np.asarray(out["fusion_loss"])[mask], _np(fusion), **TOL)


def test_classifier_matches_torch(setup):
    _, model, variables, peer, _ = setup
    x = np.random.default_rng(4).normal(size=(6, 20)).astype(np.float32)
    ours = model.apply(variables, jnp.asarray(x), method=lambda mdl, x: mdl.classifier(x))
    with torch.no_grad():
        ref = peer.classifier(torch.tensor(x))
    np.testing.assert_allclose(ours, _np(ref), **TOL)


@pytest.mark.parametrize("tau", [0.2, 0.5])
def test_contrast_matches_grace_in_torch(tau):
    rng = np.random.default_rng(5)
    z1, z2 = rng.normal(size=(2, 9, 6)).astype(np.float32)
    valid = np.arange(12) < 9
    pad = lambda z: np.concatenate([z, rng.normal(size=(3, 6)).astype(np.float32)])  # noqa: E731
    ours = graph_contrastive_loss(
        jnp.asarray(pad(z1)), jnp.asarray(pad(z2)), temperature=tau, node_mask=jnp.asarray(valid)
    )
    ref = tj.grace_loss(torch.tensor(z1), torch.tensor(z2), tau)
    np.testing.assert_allclose(ours, _np(ref), **TOL)
