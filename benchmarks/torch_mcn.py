"""MCN in PyTorch: the official ``Net`` structure and its training objective, eager.

One copy of the PyTorch reference, shared by the parity tests (tests/test_mcn_towers.py) and the
training-step benchmark (benchmarks/mcn.py, section ``train_step``):

* :class:`TorchResDavenet` / :class:`TorchBlock` — ``ResDavenet`` of the official code
  (brian7685/Multimodal-Clustering-Network ``model_davenet.py``), in the official Conv2d (1, k) /
  BatchNorm2d layout (``conv2d=True``) or an equivalent Conv1d one;
* :class:`TorchMCN` — the official ``Net`` (``model_tri_kmeans.py``, tri_modal, recon) with
  masked text max-pooling (as :class:`emojax.models.mcn.model.MCNModel`); its state_dict
  converts with :func:`emojax.convert.mcn.convert_mcn`;
* the objective in torch: :func:`masked_margin_softmax` / :func:`mms`, :func:`cluster_ce`,
  :func:`reconstruction_mse`, and :func:`kmeans_refit` — the official ``fast_pytorch_kmeans``
  cosine Lloyd update (matmul assignment on normalised rows, one-hot matmul for the
  UNNORMALISED member means) on ``[queue; batch]``;
* :class:`TorchMCNTrainer` — one training step: towers, the MMS pairs, k-means + clustering CE,
  reconstruction, ``torch.optim.Adam``.

Where :func:`kmeans_refit` departs from ``fast_pytorch_kmeans``: an empty cluster is re-seeded as
in :func:`emojax.losses.kmeans_fit` (the i-th empty centroid, in index order, takes the i-th
farthest point by ``1 - cos``) instead of becoming the zero vector (whose cosine is NaN), so
both implementations compute the same step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn as tnn

# -- the towers ------------------------------------------------------------------------------


class TorchBlock(tnn.Module):
    """SpeechBasicBlock; ``conv2d=True``: the official Conv2d (1, k) / BatchNorm2d layout."""

    def __init__(self, cin, cout, k, stride, conv2d):
        super().__init__()
        conv = (
            (lambda i, o, kk, s, p: tnn.Conv2d(i, o, (1, kk), s, (0, p), bias=False))
            if conv2d
            else (lambda i, o, kk, s, p: tnn.Conv1d(i, o, kk, s, p, bias=False))
        )
        bn = tnn.BatchNorm2d if conv2d else tnn.BatchNorm1d
        self.conv1, self.bn1 = conv(cin, cout, k, stride, k // 2), bn(cout)
        self.conv2, self.bn2 = conv(cout, cout, k, 1, k // 2), bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(conv(cin, cout, 1, stride, 0), bn(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class TorchResDavenet(tnn.Module):
    """``[B, feat_dim, T]`` -> ``[B, C, T']``, the official layer order. ``cfg``: an
    :class:`emojax.nn.resdavenet.ResDAVEnetConfig`."""

    def __init__(self, cfg, conv2d=False):
        super().__init__()
        self.conv2d = conv2d
        if conv2d:
            self.batchnorm1 = tnn.BatchNorm2d(1)  # built, never used (as in the official code)
            self.conv1 = tnn.Conv2d(1, cfg.widths[0], (cfg.feat_dim, 1), bias=False)
            self.bn1 = tnn.BatchNorm2d(cfg.widths[0])
        else:
            self.conv1 = tnn.Conv1d(cfg.feat_dim, cfg.widths[0], 1, bias=False)
            self.bn1 = tnn.BatchNorm1d(cfg.widths[0])
        cin = cfg.widths[0]
        for s, depth in enumerate(cfg.depths):
            blocks = []
            for b in range(depth):
                cout = cfg.widths[s + 1]
                blocks.append(
                    TorchBlock(cin, cout, cfg.kernel, cfg.stride if b == 0 else 1, conv2d)
                )
                cin = cout
            setattr(self, f"layer{s + 1}", tnn.Sequential(*blocks))
        self.n_layers = len(cfg.depths)

    def forward(self, x):
        if self.conv2d:
            x = x.unsqueeze(1)
        x = F.relu(self.bn1(self.conv1(x)))
        for s in range(self.n_layers):
            x = getattr(self, f"layer{s + 1}")(x)
        return x.squeeze(2) if self.conv2d else x


class TorchGEU(tnn.Module):
    """Gated Embedding Unit without normalisation: ``glu([fc(x), cg.fc(fc(x))])``."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.fc = tnn.Linear(d_in, d_out)
        self.cg = tnn.Module()
        self.cg.fc = tnn.Linear(d_out, d_out)

    def forward(self, x):
        x = self.fc(x)
        return F.glu(torch.cat((x, self.cg.fc(x)), 1), 1)


def _recon(d_in, hidden, d_out):
    return tnn.Sequential(
        tnn.Linear(d_in, hidden), tnn.ReLU(), tnn.Linear(hidden, d_out), tnn.ReLU()
    )


class TorchMCN(tnn.Module):
    """Official ``Net`` (tri_modal, recon) with masked text max-pooling.

    ``forward(video [B, V], audio [B, feat_dim, T], nframes [B], text [B, W, word], mask [B, W])``
    -> ``{"video", "audio", "text": [B, D], "recon": {m: ...}, "recon_targets": {m: ...}}``.
    """

    def __init__(
        self, cfg, conv2d=False, *, embed_dim=6144, video_dim=4096, word_dim=300, recon_hidden=768
    ):
        super().__init__()
        d = embed_dim
        self.DAVEnet = TorchResDavenet(cfg, conv2d)
        self.DAVEnet_projection = tnn.Linear(cfg.out_dim, d)
        self.GU_audio = TorchGEU(cfg.out_dim, cfg.out_dim)
        self.GU_video = TorchGEU(video_dim, d)
        self.text_pooling_caption = tnn.Module()
        self.text_pooling_caption.fc = tnn.Linear(word_dim, d)
        self.GU_text_captions = TorchGEU(d, d)
        self.recon_v = _recon(d, recon_hidden, video_dim)
        self.recon_a = _recon(d, recon_hidden, cfg.out_dim)
        self.recon_t = _recon(d, recon_hidden, d)

    def forward(self, video, audio_input, nframes, text, mask):
        out, targets = {}, {"video": video}
        out["video"] = self.GU_video(video)
        audio = self.DAVEnet(audio_input)
        if not self.training:  # the official evaluation pooling loop
            ratio = round(audio_input.size(-1) / audio.size(-1))
            nframes = nframes // ratio
            pool = tnn.AdaptiveAvgPool2d((1, 1))
            feats = audio.unsqueeze(2)
            audio = torch.cat(
                [
                    pool(feats[i][:, :, 0 : max(1, int(nframes[i]))]).unsqueeze(0)
                    for i in range(len(feats))
                ]
            )
            audio = audio.squeeze(3).squeeze(2)
        else:
            audio = audio.mean(dim=2)
        targets["audio"] = audio
        out["audio"] = self.DAVEnet_projection(self.GU_audio(audio))
        h = F.relu(self.text_pooling_caption.fc(text)).masked_fill(~mask[..., None], 0.0)
        targets["text"] = h.max(dim=1)[0]
        out["text"] = self.GU_text_captions(targets["text"])
        out["recon"] = {
            m: getattr(self, f"recon_{m[0]}")(out[m]) for m in ("video", "audio", "text")
        }
        out["recon_targets"] = targets
        return out


def randomise_bn(model, seed=0):
    """Non-trivial batch-norm statistics and affine parameters (for eval-mode parity tests)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, tnn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


# -- the objective ---------------------------------------------------------------------------


def masked_margin_softmax(x, y, margin=0.001):
    """MMS of one pair: ``CE(S - delta I, arange) + CE(S^T - delta I, arange)``, ``S = x y^T``."""
    s = x @ y.T
    s = s - margin * torch.eye(s.shape[0], dtype=s.dtype)
    target = torch.arange(s.shape[0])
    return F.cross_entropy(s, target) + F.cross_entropy(s.T, target)


def mms(embeddings, pairs, margin=0.001):
    """Sum of :func:`masked_margin_softmax` over ``pairs`` (a list of (name, name))."""
    return sum(masked_margin_softmax(embeddings[a], embeddings[b], margin) for a, b in pairs)


def cluster_ce(embeddings, centroids, labels, margin=0.001):
    """Mean over modalities of ``CE(x C^T - margin onehot(y), y)`` (centroids constant)."""
    onehot = F.one_hot(labels, centroids.shape[0]).to(centroids.dtype)
    losses = [F.cross_entropy(e @ centroids.T - margin * onehot, labels) for e in embeddings]
    return torch.stack(losses).mean()


def reconstruction_mse(recon, targets):
    """``sum_m mean((recon_m - target_m)^2)``; targets NOT detached (the official code)."""
    return sum(F.mse_loss(recon[m], targets[m]) for m in recon)


def _inv_norm(x):
    sq = (x * x).sum(1)
    return torch.where(sq > 0, torch.rsqrt(torch.where(sq > 0, sq, torch.ones_like(sq))), 0.0)


def kmeans_refit(points, centroids, iters):
    """``iters`` Lloyd iterations of cosine k-means from ``centroids`` [K, D] on ``points``
    [N, D] (``fast_pytorch_kmeans`` ``mode="cosine"``: assignment by cosine, centroids = the
    unnormalised member means; empty clusters re-seeded, module docstring). Returns the new
    centroids and the last iteration's labels [N] (assigned before its update)."""
    k = centroids.shape[0]
    inv = _inv_norm(points)
    arange = torch.arange(k)[:, None]
    for _ in range(iters):
        scores = points @ F.normalize(centroids, dim=1).T  # [N, K], rows scaled by ||x||
        best, labels = scores.max(dim=1)
        onehot = (labels[None, :] == arange).to(points.dtype)  # [K, N]
        counts = onehot.sum(1)
        sums = onehot @ points  # [K, D]
        new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1.0)[:, None], centroids)
        empty = counts == 0
        if bool(empty.any()):
            far = torch.topk(1.0 - best * inv, min(k, points.shape[0])).indices
            rank = (torch.cumsum(empty.to(torch.int64), 0) - 1).clamp(0, far.shape[0] - 1)
            new = torch.where(empty[:, None], points[far[rank]], new)
        centroids = new
    return centroids, labels


class TorchMCNTrainer:
    """One MCN training step in PyTorch eager: ``step(batch) -> (loss, parts)``.

    loss = sum_pairs MMS + w_cluster * CE to this step's k-means centroids
           + w_recon * sum_m MSE(recon_m, target_m)

    The k-means state (centroids [K, D], a full FIFO ring buffer ``queue`` [Q, D], write pointer)
    is refit every step (``iters`` Lloyd iterations on ``[queue; fused batch]`` from the previous
    centroids), then the detached fused batch ``(v + a + t) / 3`` is pushed into the queue.
    """

    def __init__(self, model, centroids, queue, *, pairs, lr, iters, margin=0.001,
                 w_cluster=1.0, w_recon=50.0):  # fmt: skip
        self.model = model.train()
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.centroids = torch.as_tensor(centroids).clone()
        self.queue = torch.as_tensor(queue).clone()
        self.ptr = 0
        self.pairs, self.iters, self.margin = list(pairs), iters, margin
        self.w_cluster, self.w_recon = w_cluster, w_recon

    @staticmethod
    def tensors(batch):
        """numpy batch (emojax layout) -> the forward's torch arguments."""
        return (
            torch.as_tensor(batch["video"]),
            torch.as_tensor(batch["audio"]).transpose(1, 2).contiguous(),
            torch.full((batch["video"].shape[0],), batch["audio"].shape[1], dtype=torch.long),
            torch.as_tensor(batch["text"]),
            torch.as_tensor(batch["text_mask"]).bool(),
        )

    def step(self, args):
        self.opt.zero_grad(set_to_none=True)
        out = self.model(*args)
        emb = {m: out[m] for m in ("video", "audio", "text")}
        l_mms = mms(emb, self.pairs, self.margin)
        l_rec = reconstruction_mse(out["recon"], out["recon_targets"])
        with torch.no_grad():
            fused = (emb["video"] + emb["audio"] + emb["text"]).detach() / 3
            points = torch.cat([self.queue, fused])
            self.centroids, labels = kmeans_refit(points, self.centroids, self.iters)
            labels = labels[self.queue.shape[0] :]
            rows = (self.ptr + torch.arange(fused.shape[0])) % self.queue.shape[0]
            self.queue[rows] = fused
            self.ptr = (self.ptr + fused.shape[0]) % self.queue.shape[0]
        l_clu = cluster_ce(list(emb.values()), self.centroids, labels, self.margin)
        loss = l_mms + self.w_cluster * l_clu + self.w_recon * l_rec
        loss.backward()
        self.opt.step()
        return loss.detach(), {"mms": l_mms.detach(), "cluster": l_clu.detach(),
                               "recon": l_rec.detach()}  # fmt: skip
