"""The UniEmoX pretraining step in PyTorch eager: the peer of ``benchmarks.uniemox``.

The MAE is Hugging Face ``ViTMAEForPreTraining`` (its encoder on the visible patches, its
decoder predicting every patch; its ``norm_pix_loss`` loss on the masked ones:
:func:`mae_loss`); the per-view feature is its ``decoder.decoder_embed`` at CLS; the fusion is
``ELU(Linear(LN(scene) + LN(person)))``; the teacher is Hugging Face ``CLIPModel``'s image
features (no gradient); the guidance is REFERENCES.md's formula written with ``torch`` ops;
``torch.optim.AdamW`` updates the student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TorchUniEmoX(nn.Module):
    """``mae``: a ``ViTMAEForPreTraining``; ``dim``: its decoder width (= the teacher's)."""

    def __init__(self, mae: nn.Module, dim: int):
        super().__init__()
        self.mae = mae
        self.fusion_norm = nn.LayerNorm(dim, eps=1e-6)
        self.fusion = nn.Linear(dim, dim)

    def view(self, pixels: torch.Tensor, noise: torch.Tensor):
        """Encoder output on the visible patches and the view feature ``[batch, dim]``."""
        out = self.mae.vit(pixel_values=pixels, noise=noise)
        feature = self.mae.decoder.decoder_embed(out.last_hidden_state[:, :1])[:, 0]
        return out, feature

    def forward(self, scene, person, scene_noise, person_noise):
        """NCHW views and their masking noise -> (MAE loss, fused feature)."""
        out, scene_feature = self.view(scene, scene_noise)
        pred = self.mae.decoder(out.last_hidden_state, out.ids_restore).logits
        mae = mae_loss(self.mae.patchify(scene), pred, out.mask)
        fused = self.fusion_norm(scene_feature)
        if person is not None:
            _, person_feature = self.view(person, person_noise)
            fused = fused + self.fusion_norm(person_feature)
        return mae, F.elu(self.fusion(fused))


def mae_loss(target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ViTMAEForPreTraining``'s loss (``norm_pix_loss``): per-patch normalised targets, MSE
    per patch, mean over the masked ones (transformers 5 computes it inside ``forward``)."""
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    return (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()


def guidance(f: torch.Tensor, g: torch.Tensor, text: torch.Tensor):
    """(1 - cos(f, g)).mean(), (1 - cos(n(f T^T), n(g T^T))).mean(); g, T constants."""
    t = F.normalize(text, dim=-1)
    image = (1 - F.cosine_similarity(f, g, dim=-1)).mean()
    prompt = 1 - (F.normalize(f @ t.T, dim=-1) * F.normalize(g @ t.T, dim=-1)).sum(-1)
    return image, prompt.mean()


class TorchUniEmoXTrainer:
    """One step: teacher image features (no grad) -> student -> L -> AdamW."""

    def __init__(self, student: TorchUniEmoX, clip: nn.Module, lr: float, weight_decay: float):
        self.student, self.clip = student, clip.eval()
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(
            student.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay
        )

    def step(self, inputs: dict):
        """``inputs``: scene, person, teacher (NCHW float), scene_noise, person_noise, text."""
        with torch.no_grad():
            g = self.clip.get_image_features(pixel_values=inputs["teacher"])
            g = getattr(g, "pooler_output", g)
        mae, fused = self.student(
            inputs["scene"], inputs["person"], inputs["scene_noise"], inputs["person_noise"]
        )
        image, prompt = guidance(fused, g, inputs["text"])
        loss = mae + image + prompt
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach(), {
            "mae": mae.detach(),
            "image": image.detach(),
            "prompt": prompt.detach(),
        }
