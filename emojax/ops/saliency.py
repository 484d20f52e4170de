"""Itti-Koch-Niebur (1998) bottom-up saliency, batched and jittable.

L. Itti, C. Koch, E. Niebur, "A Model of Saliency-Based Visual Attention for Rapid Scene
Analysis", IEEE TPAMI 20(11), 1998. Steps, all in JAX (no parameters)::

    intensity I = (r + g + b) / 3; r, g, b divided by I where I > max(I) / 10 (else 0)
    broadly tuned colours R = r-(g+b)/2, G = g-(r+b)/2, B = b-(r+g)/2,
        Y = (r+g)/2 - |r-g|/2 - b (values <= COLOUR_FLOOR set to 0)
    dyadic Gaussian pyramids (5-tap [1 4 6 4 1]/16 blur, edge padding, keep every 2nd pixel)
    orientation O(s, theta): Gabor energy (even/odd pair) of I(s), theta in 0, 45, 90, 135 deg
    centre-surround c in centers, s = c + delta, delta in deltas (nearest-neighbour expansion):
        I(c,s) = |I(c) - I(s)|,  RG(c,s) = |(R-G)(c) - (G-R)(s)|,  BY(c,s) = |(B-Y)(c) - (Y-B)(s)|
        O(c,s,theta) = |O(c,theta) - O(s,theta)|
    N(.): scale a map to [0, 1], multiply by (1 - m)^2, m = mean of its local maxima (3x3)
        that are >= 1/10 and below the global maximum
    conspicuity at level ``map_level`` (maps reduced there by the same pyramid step):
        I_bar = sum N(I(c,s)),  C_bar = sum N(RG) + N(BY),  O_bar = sum_theta N(sum N(O(.,theta)))
    S = (N(I_bar) + N(C_bar) + N(O_bar)) / 3

The defaults are the paper's (centres 2, 3, 4; deltas 3, 4; map at level 4). A level smaller
than one pixel stays one pixel. :func:`box_saliency_shares` gives each box's share of a map's
mass (the seed-002 region weights).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

BLUR_TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0
ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
GABOR_SIZE = 7
GABOR_SIGMA = 1.5  # pixels of the pyramid level
GABOR_WAVELENGTH = 4.0
COLOUR_FLOOR = 1e-4  # opponent colour values at or below this are 0 (R, G, B, Y are >= 0)
LOCAL_MAX_THRESHOLD = 0.1  # local maxima below 1/10 of the map's maximum are ignored
_EPS = 1e-12


def gabor_kernels(size: int = GABOR_SIZE) -> np.ndarray:
    """``[size, size, 2 * len(ORIENTATIONS)]``: even (cosine) then odd (sine) zero-mean Gabor
    kernels per orientation (0 deg responds to vertical edges), unit L1 norm."""
    half = size // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    kernels = []
    for phase in (np.cos, np.sin):
        for theta in np.deg2rad(ORIENTATIONS):
            u = x * np.cos(theta) + y * np.sin(theta)
            envelope = np.exp(-(x**2 + y**2) / (2 * GABOR_SIGMA**2))
            k = envelope * phase(2 * np.pi * u / GABOR_WAVELENGTH)
            k = k - envelope * k.sum() / envelope.sum()  # zero DC response
            kernels.append(k / np.abs(k).sum())
    return np.stack(kernels, axis=-1).astype(np.float32)


def _correlate(x: jax.Array, kernel: np.ndarray) -> jax.Array:
    """Edge-padded 2-D correlation of every channel of ``x [B, H, W, C]`` with ``kernel [kh, kw,
    K]`` -> ``[B, H, W, C * K]`` (channel-major: channel c's K outputs are adjacent)."""
    kh, kw, k = kernel.shape
    c = x.shape[-1]
    x = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="edge")
    w = jnp.asarray(kernel)[:, :, None, None, :] * jnp.eye(c, dtype=x.dtype)[None, None, :, :, None]
    w = w.reshape(kh, kw, c, c * k)
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )


def _blur(x: jax.Array) -> jax.Array:
    """Separable 5-tap binomial blur of ``[B, H, W, C]`` (edge padding)."""
    x = _correlate(x, BLUR_TAPS[:, None, None])
    return _correlate(x, BLUR_TAPS[None, :, None])


def pyramid_reduce(x: jax.Array) -> jax.Array:
    """One pyramid step ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]``."""
    return _blur(x)[:, ::2, ::2, :]


def gaussian_pyramid(x: jax.Array, levels: int) -> list[jax.Array]:
    """Levels ``0..levels`` of ``x [B, H, W, C]`` (level 0 is ``x``)."""
    out = [x]
    for _ in range(levels):
        out.append(pyramid_reduce(out[-1]))
    return out


def expand_to(x: jax.Array, factor: int, height: int, width: int) -> jax.Array:
    """Nearest-neighbour expansion of a coarser level: pixel ``i`` of the result is
    ``x[i // factor]``; ``[B, h, w, C] -> [B, height, width, C]``."""
    rows = jnp.arange(height) // factor
    cols = jnp.arange(width) // factor
    return x[:, rows][:, :, cols]


def normalize_map(m: jax.Array) -> jax.Array:
    """Itti's N(.) on each map of ``m [B, h, w, K]`` (non-negative): scale to [0, 1], then
    weight by ``(1 - mean of the other local maxima)^2``."""
    top = jnp.max(m, axis=(1, 2), keepdims=True)
    padded = jnp.pad(m, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    window_max = jax.lax.reduce_window(
        padded, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "VALID"
    )
    # compared before scaling: x / top need not give exactly 1 at the maximum under XLA
    is_max = (m >= window_max) & (m >= LOCAL_MAX_THRESHOLD * top) & (m < top)
    m = m / jnp.maximum(top, _EPS)
    count = jnp.sum(is_max, axis=(1, 2), keepdims=True)
    mean = jnp.sum(jnp.where(is_max, m, 0.0), axis=(1, 2), keepdims=True) / jnp.maximum(count, 1)
    return m * (1.0 - mean) ** 2


def _reduce_to(x: jax.Array, steps: int) -> jax.Array:
    for _ in range(steps):
        x = pyramid_reduce(x)
    return x


def _channels(images: jax.Array) -> jax.Array:
    """``[B, H, W, 3]`` -> ``[B, H, W, 5]``: I, R, G, B, Y."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    intensity = (r + g + b) / 3.0
    keep = intensity > jnp.max(intensity, axis=(1, 2), keepdims=True) / 10.0
    scale = jnp.where(keep, 1.0 / jnp.maximum(intensity, _EPS), 0.0)
    r, g, b = r * scale, g * scale, b * scale
    colours = jnp.stack(
        [r - (g + b) / 2, g - (r + b) / 2, b - (r + g) / 2, (r + g) / 2 - jnp.abs(r - g) / 2 - b],
        axis=-1,
    )
    # grey pixels give rounding noise (r / I != 1 by an ulp), which N(.) would blow up to [0, 1]
    colours = jnp.where(colours > COLOUR_FLOOR, colours, 0.0)
    return jnp.concatenate([intensity[..., None], colours], axis=-1)


@functools.partial(jax.jit, static_argnames=("centers", "deltas", "map_level"))
def itti_koch_saliency(
    images: jax.Array,
    *,
    centers: tuple[int, ...] = (2, 3, 4),
    deltas: tuple[int, ...] = (3, 4),
    map_level: int = 4,
) -> jax.Array:
    """Saliency maps of ``images [B, H, W, 3]`` (any non-negative scale, e.g. [0, 1]).

    Returns ``[B, ceil(H / 2^map_level), ceil(W / 2^map_level)]`` float32, non-negative.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [batch, H, W, 3], got {images.shape}")
    if not centers or not deltas or min(centers) < 0 or min(deltas) < 1:
        raise ValueError(f"centers {centers} must be >= 0 and deltas {deltas} >= 1, non-empty")
    if map_level < max(centers):
        raise ValueError(f"map_level={map_level} must be >= the largest centre {max(centers)}")
    levels = max(centers) + max(deltas)
    pyr = gaussian_pyramid(_channels(images.astype(jnp.float32)), levels)
    kernels = gabor_kernels()
    n_orient = len(ORIENTATIONS)

    def orientation(level: jax.Array) -> jax.Array:  # [B, h, w] -> [B, h, w, 4]
        response = _correlate(level[..., :1], kernels)
        return jnp.sqrt(response[..., :n_orient] ** 2 + response[..., n_orient:] ** 2 + _EPS)

    needed = sorted(set(centers) | {c + d for c in centers for d in deltas})
    orient = {s: orientation(pyr[s]) for s in needed}

    # per centre: N of every centre-surround map, summed per feature (I, C, O x 4), then one
    # reduction to map_level
    conspicuity = 0.0
    for c in centers:
        center = jnp.concatenate([pyr[c], orient[c]], axis=-1)  # I R G B Y O0..O3
        h, w = center.shape[1:3]
        maps = []
        for d in deltas:
            surround = expand_to(jnp.concatenate([pyr[c + d], orient[c + d]], -1), 2**d, h, w)
            rg = (center[..., 1] - center[..., 2]) - (surround[..., 2] - surround[..., 1])
            by = (center[..., 3] - center[..., 4]) - (surround[..., 4] - surround[..., 3])
            diff = center[..., 5:] - surround[..., 5:]
            maps.append(
                jnp.abs(
                    jnp.concatenate(
                        [(center - surround)[..., :1], rg[..., None], by[..., None], diff], axis=-1
                    )
                )
            )
        normalized = normalize_map(jnp.concatenate(maps, axis=-1))  # [B, h, w, 7 * deltas]
        per_delta = normalized.reshape(*normalized.shape[:3], len(deltas), 7).sum(axis=3)
        features = jnp.concatenate(
            [per_delta[..., :1], per_delta[..., 1:2] + per_delta[..., 2:3], per_delta[..., 3:]],
            axis=-1,
        )  # [B, h, w, 6]: I, C, O0..O3
        conspicuity = conspicuity + _reduce_to(features, map_level - c)
    orient_bar = normalize_map(conspicuity[..., 2:]).sum(axis=-1, keepdims=True)
    bars = jnp.concatenate([conspicuity[..., :2], orient_bar], axis=-1)
    return normalize_map(bars).mean(axis=-1)


def cell_overlaps(lo: jax.Array, hi: jax.Array, cells: int) -> jax.Array:
    """Fraction of each of ``cells`` equal cells of [0, 1] covered by ``[lo, hi]``;
    ``lo, hi: [...]`` -> ``[..., cells]``."""
    edges = jnp.arange(cells + 1, dtype=jnp.float32) / cells
    left = jnp.maximum(lo[..., None], edges[:-1])
    right = jnp.minimum(hi[..., None], edges[1:])
    return jnp.clip(right - left, 0.0, None) * cells


def box_saliency_shares(saliency: jax.Array, boxes: jax.Array) -> jax.Array:
    """Each box's share of its image's saliency mass (the map taken as piecewise constant).

    saliency: [B, h, w] non-negative; boxes: [B, R, 4] as (y0, x0, y1, x1) in [0, 1] of the
    image. Returns [B, R]; a box covering the whole image gets 1, overlapping boxes count their
    common mass twice.
    """
    h, w = saliency.shape[1:]
    oy = cell_overlaps(boxes[..., 0], boxes[..., 2], h)  # [B, R, h]
    ox = cell_overlaps(boxes[..., 1], boxes[..., 3], w)  # [B, R, w]
    mass = jnp.einsum("brh,bhw,brw->br", oy, saliency, ox, precision=jax.lax.Precision.HIGHEST)
    total = jnp.sum(saliency, axis=(1, 2))[:, None]
    return mass / jnp.maximum(total, _EPS)
