"""Itti-Koch-Niebur saliency (emojax.ops.saliency) against a NumPy/SciPy reference of the same
algorithm (benchmarks/torch_anp_distill.py ``numpy_saliency``), its qualitative properties, and
the region weights."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.torch_anp_distill import numpy_saliency
from emojax.ops import saliency as sal

SIZE = 64  # small images: levels 5.. are 2x2 / 1x1, every code path still runs


# -- fixtures -----------------------------------------------------------------------------------


def _images():
    rng = np.random.default_rng(0)
    textured = rng.uniform(0, 1, (SIZE, SIZE, 3))
    scene = np.full((SIZE, SIZE, 3), 0.3) + rng.normal(0, 0.03, (SIZE, SIZE, 3))
    scene[10:30, 5:25] = (0.9, 0.8, 0.1)
    scene[40:60, 35:50] = (0.1, 0.2, 0.8)
    blob = np.full((SIZE, SIZE, 3), 0.4)
    blob[36:48, 12:24] = 1.0
    return np.clip(np.stack([textured, scene, blob]), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def maps():
    images = _images()
    return images, np.asarray(sal.itti_koch_saliency(jnp.asarray(images)))


def test_matches_numpy_reference(maps):
    images, ours = maps
    assert ours.shape == (3, SIZE // 16, SIZE // 16)
    for image, got in zip(images, ours, strict=True):
        np.testing.assert_allclose(got, numpy_saliency(image), rtol=2e-4, atol=2e-5)


def test_single_bright_blob_gets_the_mass(maps):
    images, ours = maps
    assert np.all(ours >= 0)
    blob = ours[
        2
    ]  # paper levels: 4x4 cells; the blob (rows 36-48, cols 12-24) is in cell (2..3, 0..1)
    assert np.unravel_index(blob.argmax(), blob.shape) in {(2, 0), (2, 1), (3, 0), (3, 1)}
    # one octave finer (16x16 map): the blob's box holds most of the mass per unit area
    fine = sal.itti_koch_saliency(
        jnp.asarray(images[2:]), centers=(1, 2), deltas=(2, 3), map_level=2
    )
    box = jnp.asarray([[[36 / 64, 12 / 64, 48 / 64, 24 / 64]]])
    share = float(sal.box_saliency_shares(fine, box)[0, 0])
    area = (12 / 64) ** 2
    assert share > 0.25 and share / area > 8 * (1 - share) / (1 - area), share
    peak = np.unravel_index(np.asarray(fine[0]).argmax(), (16, 16))
    assert 9 <= peak[0] <= 12 and 3 <= peak[1] <= 6, peak


def test_box_shares_integrate_the_piecewise_constant_map():
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, (2, 4, 4)).astype(np.float32)
    boxes = np.array(
        [[[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [[0.125, 0.25, 0.625, 1], [0.3, 0.3, 0.3, 0.9]]]
    )
    got = np.asarray(sal.box_saliency_shares(jnp.asarray(s), jnp.asarray(boxes, jnp.float32)))
    fine = np.repeat(np.repeat(s, 8, axis=1), 8, axis=2)  # 32x32 grid, box edges on it
    for b in range(2):
        for r in range(2):
            y0, x0, y1, x1 = (boxes[b, r] * 32).round().astype(int)
            want = fine[b, y0:y1, x0:x1].sum() / fine[b].sum()
            np.testing.assert_allclose(got[b, r], want, rtol=1e-5, atol=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[batch, H, W, 3\]"):
        sal.itti_koch_saliency(jnp.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="map_level"):
        sal.itti_koch_saliency(jnp.zeros((1, 8, 8, 3)), map_level=1)
