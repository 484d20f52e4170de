"""ANP distillation in PyTorch, eager: the teacher and the student's training step.

One copy of the PyTorch reference, shared by the parity tests (tests/test_anp_distill_teacher.py)
and the benchmark (benchmarks/anp_distill.py):

* :class:`TorchTeacher` — word embedding + learned positions + ``nn.TransformerEncoder``
  (post-norm, ReLU, batch first: the stock PyTorch encoder the paper's "Transformer-encoder"
  most plausibly is) + the last token through ``nn.Linear``; its state_dict converts with
  :func:`emojax.models.anp_distill.convert.convert_teacher`;
* :func:`anp_loss` — the seed's ``(alpha BCE(P_RN, P_SB) + BCE(P_RN, y)) / (1 + alpha)``;
* :class:`TorchStudent` — Hugging Face ``ResNetModel`` + ``nn.Linear`` (converts with
  :func:`emojax.convert.convert_resnet` for the ResNet part), one SGD-free Adam step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn as tnn

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
