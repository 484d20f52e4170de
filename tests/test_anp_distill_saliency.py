"""Itti-Koch-Niebur saliency (emojax.ops.saliency) against a NumPy/SciPy reference of the same
algorithm, its qualitative properties, and the region weights."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from emojax.ops import saliency as sal

SIZE = 64  # small images: levels 5.. are 2x2 / 1x1, every code path still runs


# -- the reference: loops over maps, scipy.ndimage correlations, no JAX -----------------------


def _ref_reduce(x):
    taps = sal.BLUR_TAPS.astype(np.float64)
    x = ndimage.correlate1d(x, taps, axis=0, mode="nearest")
    x = ndimage.correlate1d(x, taps, axis=1, mode="nearest")
    return x[::2, ::2]


def _ref_expand(x, factor, shape):
    out = np.empty(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            out[i, j] = x[i // factor, j // factor]
    return out


def _ref_normalize(m):
    top = m.max()
    maxima = []
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            window = m[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
            if m[i, j] >= window.max() and sal.LOCAL_MAX_THRESHOLD * top <= m[i, j] < top:
                maxima.append(m[i, j] / top)
    m = m / max(top, 1e-12)
    mean = np.mean(maxima) if maxima else 0.0
    return m * (1.0 - mean) ** 2


def _ref_saliency(image, centers=(2, 3, 4), deltas=(3, 4), map_level=4):
    """One image [H, W, 3] -> [h, w], written from the paper's description map by map."""
    image = image.astype(np.float64)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    intensity = (r + g + b) / 3
    keep = intensity > intensity.max() / 10
    safe = np.where(keep, intensity, 1.0)
    r, g, b = [np.where(keep, c / safe, 0.0) for c in (r, g, b)]
    floor = lambda x: np.where(x > sal.COLOUR_FLOOR, x, 0.0)  # noqa: E731
    chans = {
        "I": intensity,
        "R": floor(r - (g + b) / 2),
        "G": floor(g - (r + b) / 2),
        "B": floor(b - (r + g) / 2),
        "Y": floor((r + g) / 2 - np.abs(r - g) / 2 - b),
    }
    levels = max(centers) + max(deltas)
    pyr = {k: [v] for k, v in chans.items()}
    for k in pyr:
        for _ in range(levels):
            pyr[k].append(_ref_reduce(pyr[k][-1]))
    kernels = sal.gabor_kernels().astype(np.float64)
    n = len(sal.ORIENTATIONS)

    def orient(level, t):
        even = ndimage.correlate(pyr["I"][level], kernels[..., t], mode="nearest")
        odd = ndimage.correlate(pyr["I"][level], kernels[..., n + t], mode="nearest")
        return np.sqrt(even**2 + odd**2 + 1e-12)

    def to_map_level(m, c):
        for _ in range(map_level - c):
            m = _ref_reduce(m)
        return m

    i_bar = c_bar = 0.0
    o_sum = [0.0] * n
    for c in centers:
        shape = pyr["I"][c].shape
        for d in deltas:
            s, f = c + d, 2**d
            i_cs = np.abs(pyr["I"][c] - _ref_expand(pyr["I"][s], f, shape))
            rg = np.abs(
                (pyr["R"][c] - pyr["G"][c]) - _ref_expand(pyr["G"][s] - pyr["R"][s], f, shape)
            )
            by = np.abs(
                (pyr["B"][c] - pyr["Y"][c]) - _ref_expand(pyr["Y"][s] - pyr["B"][s], f, shape)
            )
            i_bar = i_bar + to_map_level(_ref_normalize(i_cs), c)
            c_bar = c_bar + to_map_level(_ref_normalize(rg) + _ref_normalize(by), c)
            for t in range(n):
                o_cs = np.abs(orient(c, t) - _ref_expand(orient(s, t), f, shape))
                o_sum[t] = o_sum[t] + to_map_level(_ref_normalize(o_cs), c)
    o_bar = sum(_ref_normalize(o) for o in o_sum)
    return (_ref_normalize(i_bar) + _ref_normalize(c_bar) + _ref_normalize(o_bar)) / 3


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
        np.testing.assert_allclose(got, _ref_saliency(image), rtol=2e-4, atol=2e-5)


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
