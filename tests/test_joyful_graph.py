"""Joyful's dialogue graphs: edges and relation types vs a straightforward Python reference on
random dialogues, augmented views (rewiring stays in the dialogue, nothing mutated), Katz edges,
and the errors for bad dialogues."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.models.joyful import graph as G

MODS = ("text",)


def _dialogue(rng, n, n_speakers):
    return {
        "text": rng.normal(size=(n, 3)).astype(np.float32),
        "speaker": rng.integers(0, n_speakers, n),
        "label": rng.integers(0, 4, n),
    }


def _reference_edges(speakers, past, future, n_speakers):
    """COGMEN/Joyful's rule written as loops: j -> k for k in [j - past, j + future]."""
    edges = set()
    n = len(speakers)
    relation = {}
    for a in range(n_speakers):
        for b in range(n_speakers):
            for direction in (0, 1):
                relation[(a, b, direction)] = len(relation)
    for j in range(n):
        for k in range(max(0, j - past), min(n, j + future + 1)):
            edges.add((j, k, relation[(int(speakers[j]), int(speakers[k]), int(j < k))]))
    return edges


@pytest.mark.parametrize("past,future,n_speakers", [(8, 8, 2), (2, 5, 3), (0, 1, 9)])
def test_edges_and_relations_match_python_reference(past, future, n_speakers):
    rng = np.random.default_rng(past * 10 + future)
    lengths = rng.integers(1, 13, size=6)
    dialogues = [_dialogue(rng, n, n_speakers) for n in lengths]
    batch = G.collate(
        dialogues,
        max_len=12,
        n_speakers=n_speakers,
        past=past,
        future=future,
        modalities=MODS,
        num_classes=4,
    )
    assert G.num_relations(n_speakers) == 2 * n_speakers**2
    for b, d in enumerate(dialogues):
        m = batch["edge_mask"][b]
        ours = set(
            zip(
                batch["edge_src"][b][m].tolist(),
                batch["edge_dst"][b][m].tolist(),
                batch["edge_type"][b][m].tolist(),
                strict=True,
            )
        )
        assert len(ours) == m.sum()  # no duplicate edge
        assert ours == _reference_edges(d["speaker"], past, future, n_speakers)
        assert batch["utt_mask"][b].sum() == len(d["speaker"])
        np.testing.assert_array_equal(batch["text"][b, len(d["speaker"]) :], 0.0)


def test_disjoint_union_offsets_each_dialogue():
    rng = np.random.default_rng(0)
    batch = G.collate(
        [_dialogue(rng, n, 2) for n in (3, 5)],
        max_len=5,
        n_speakers=2,
        past=1,
        future=1,
        modalities=MODS,
        num_classes=4,
    )
    index, mask, _ = G.disjoint_union(
        batch["edge_src"], batch["edge_dst"], batch["edge_mask"], batch["edge_type"], 5
    )
    index, mask = np.asarray(index), np.asarray(mask)
    real = index[:, mask]
    assert (real[:, : int(batch["edge_mask"][0].sum())] < 3).all()  # dialogue 0: nodes 0..2
    assert (real[:, int(batch["edge_mask"][0].sum()) :] >= 5).all()  # dialogue 1: 5..9


def test_rewiring_stays_in_the_dialogue_and_leaves_the_batch_unchanged():
    rng = np.random.default_rng(1)
    batch = G.collate(
        [_dialogue(rng, n, 2) for n in (4, 11, 7, 1)],
        max_len=12,
        n_speakers=2,
        past=8,
        future=8,
        modalities=MODS,
        num_classes=4,
    )
    before = {k: v.copy() for k, v in batch.items()}
    dst = jnp.asarray(batch["edge_dst"])
    new = np.asarray(
        G.rewire_edges(
            jax.random.key(0),
            dst,
            jnp.asarray(batch["edge_mask"]),
            jnp.asarray(batch["utt_mask"]),
            0.5,
        )
    )
    lengths = batch["utt_mask"].sum(1)
    m = batch["edge_mask"]
    assert (new[m] < np.broadcast_to(lengths[:, None], m.shape)[m]).all()
    np.testing.assert_array_equal(new[~m], batch["edge_dst"][~m])  # padding edges untouched
    changed = (new != batch["edge_dst"])[m].mean()
    assert 0.2 < changed < 0.6  # about rate x (1 - 1/length)
    for k, v in before.items():
        np.testing.assert_array_equal(batch[k], v)


def test_feature_mask_rate():
    x = jnp.ones((200, 50))
    kept = float(jnp.mean(G.mask_features(jax.random.key(2), x, 0.25)))
    assert abs(kept - 0.75) < 0.02


def test_katz_edges_match_numpy():
    rng = np.random.default_rng(3)
    dialogues = [_dialogue(rng, n, 2) for n in (6, 4)]
    batch = G.collate(
        dialogues, max_len=6, n_speakers=2, past=1, future=1, modalities=MODS, num_classes=4
    )
    args = {k: jnp.asarray(batch[k]) for k in ("edge_src", "edge_dst", "edge_mask", "utt_mask")}
    src, dst, etype, mask = G.katz_edges(
        args["edge_src"],
        args["edge_dst"],
        args["edge_mask"],
        args["utt_mask"],
        beta=0.5,
        order=3,
        threshold=0.5,
        n_speakers=2,
        speaker=jnp.asarray(batch["speaker"]),
    )
    for b, d in enumerate(dialogues):
        n = len(d["speaker"])
        a = np.zeros((n, n))
        for j in range(n):
            for k in range(max(0, j - 1), min(n, j + 2)):
                a[j, k] = 1
        score = 0.5 * a + 0.25 * a @ a + 0.125 * a @ a @ a
        want = {(j, k) for j in range(n) for k in range(n) if score[j, k] > 0.5 and a[j, k] == 0}
        m = np.asarray(mask[b])
        got = set(zip(np.asarray(src[b])[m].tolist(), np.asarray(dst[b])[m].tolist(), strict=True))
        assert got == want and want  # non-empty: distance-2 pairs
        spk = d["speaker"]
        for j, k, t in zip(
            np.asarray(src[b])[m], np.asarray(dst[b])[m], np.asarray(etype[b])[m], strict=True
        ):
            assert t == (spk[j] * 2 + spk[k]) * 2 + (j < k)


def test_bad_dialogues_are_clear_errors():
    rng = np.random.default_rng(4)
    kwargs = dict(max_len=5, n_speakers=2, past=1, future=1, modalities=MODS, num_classes=4)
    with pytest.raises(ValueError, match="more than the largest bucket data.max_len=5"):
        G.collate([_dialogue(rng, 6, 2)], **kwargs)
    bad = _dialogue(rng, 3, 2)
    bad["speaker"] = np.array([0, 2, 1])
    bad["vid"] = "Ses01"
    with pytest.raises(ValueError, match=r"vid 'Ses01'.*speaker ids \[0, 1, 2\].*n_speakers=2"):
        G.collate([bad], **kwargs)
    bad = _dialogue(rng, 3, 2)
    bad["label"] = np.array([0, 4, 1])
    with pytest.raises(ValueError, match="labels .* outside"):
        G.collate([bad], **kwargs)
    bad = _dialogue(rng, 3, 2)
    bad["text"][1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        G.collate([bad], **kwargs)
