"""ANP distillation in PyTorch, eager: the teacher and the student's training step.

One copy of the PyTorch reference, shared by the parity tests (tests/test_anp_distill_teacher.py)
and the benchmark (benchmarks/anp_distill.py):

* :class:`TorchTeacher` — word embedding + learned positions + ``nn.TransformerEncoder``
  (post-norm, ReLU, batch first: the stock PyTorch encoder the paper's "Transformer-encoder"
  most plausibly is) + the last token through ``nn.Linear``; its state_dict converts with
  :func:`emojax.models.anp_distill.convert.convert_teacher`;
* :func:`anp_loss` — the seed's ``(alpha BCE(P_RN, P_SB) + BCE(P_RN, y)) / (1 + alpha)``;
* :class:`TorchStudent` — Hugging Face ``ResNetModel`` + ``nn.Linear`` (converts with
  :func:`emojax.convert.convert_resnet` for the ResNet part);
* :func:`numpy_saliency` — the Itti-Koch-Niebur saliency of :mod:`emojax.ops.saliency` written
  independently from the paper's description, map by map, with NumPy / ``scipy.ndimage``
  (float64, loops; the reference of tests/test_anp_distill_saliency.py and the benchmark's peer).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn as tnn

from emojax.ops import saliency as sal

PAD = 0


class TorchTeacher(tnn.Module):
    """``tokens [N, L]`` (left-padded, end token last) -> logits ``[N, classes]``."""

    def __init__(self, vocab, dim, layers, heads, mlp, classes, max_length):
        super().__init__()
        self.embed = tnn.Embedding(vocab, dim)
        self.positions = tnn.Parameter(torch.randn(max_length, dim) * 0.02)
        layer = tnn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="relu", batch_first=True, norm_first=False
        )
        self.encoder = tnn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = tnn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.positions[-tokens.shape[1] :]
        x = self.encoder(x, src_key_padding_mask=tokens == PAD)
        return self.head(x[:, -1])


def anp_loss(logits, teacher_probs, labels, alpha: float = 1.0):
    """Seed 002: (alpha L_sp + L_r) / (1 + alpha), BCE on sigmoid(logits)."""
    l_sp = F.binary_cross_entropy_with_logits(logits, teacher_probs)
    l_r = F.binary_cross_entropy_with_logits(logits, labels.float())
    return (alpha * l_sp + l_r) / (1 + alpha)


class TorchStudent(tnn.Module):
    """Hugging Face ``ResNetModel`` (ImageNet-normalised NCHW input) + ``nn.Linear`` -> logits."""

    def __init__(self, depth: int = 50, width: int = 64, outputs: int = 1):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        from emojax.nn.resnet import resnet_config

        c = resnet_config(depth, width)
        self.resnet = ResNetModel(
            ResNetConfig(
                embedding_size=c.embedding_size,
                hidden_sizes=list(c.hidden_sizes),
                depths=list(c.depths),
                layer_type=c.layer_type,
            )
        )
        self.head = tnn.Linear(c.hidden_sizes[-1], outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.resnet(images).pooler_output.flatten(1))


# -- the NumPy saliency reference: loops over maps, scipy.ndimage correlations, no JAX ---------


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


def numpy_saliency(image, centers=(2, 3, 4), deltas=(3, 4), map_level=4):
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
