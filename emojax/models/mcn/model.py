"""MCN towers (Chen et al., ICCV 2021; official code brian7685/Multimodal-Clustering-Network,
``model_tri_kmeans.py`` + ``model_davenet.py``) as Flax Linen modules.

Batch (one row per clip; a modality may be left out, e.g. at evaluation)::

    video        [B, video_dim]       2D + 3D clip features (4096), pooled and L2-normalised
                                      by the data pipeline
    audio        [B, T, feat_dim]     log-mel frames, time-major (40 bins last)
    audio_nframes [B] int (optional)  valid frames before padding; in eval mode the audio tower
                                      averages only the valid output frames (official eval)
    text         [B, W, word_dim]     word2vec vectors (300), zero-padded
    text_mask    [B, W] bool          valid words

Towers (embedding size ``D = embed_dim``; no L2 normalisation of the outputs):

- :class:`VideoTower`: ``GEU(video_dim -> D)``; param ``geu/{fc, gating/fc}``.
- :class:`AudioTower`: :class:`~emojax.nn.resdavenet.ResDAVEnet` -> mean over time (pooled
  ``[B, 1024]``) -> ``GEU(1024 -> 1024)`` -> ``Linear(1024 -> D)``; params ``resdavenet``
  (plus its ``batch_stats``), ``geu``, ``projection``.
- :class:`TextTower`: ``Linear(word_dim -> D)`` -> ReLU -> max over the valid words (pooled
  ``[B, D]``) -> ``GEU(D -> D)``; params ``fc``, ``geu``. The official ``Sentence_Maxpool``
  takes the max over every word, padding included (a padded zero vector contributes
  ``relu(bias)``); here padding is masked out (a row with no valid word pools to 0).
- :class:`ReconHead`: ``Linear(D -> hidden)``-ReLU-``Linear(-> target)``-ReLU; params ``fc1``,
  ``fc2``; targets are the pre-gating features (video input, pooled audio, pooled text).

Several embedding spaces (the seed's study): every tower's output is the shared space, the one
MCN trains with all pairs. ``spaces`` adds named spaces on top of it; a name lists the modalities
that live in it, joined by ``_`` (``"video_audio"``, ``"video_text"``, ``"audio_text"``,
``"video_audio_text"``), and each of those modalities gets its own linear projection head
``space_{name}_{modality}: Linear(D -> space_dim)`` (``space_dim`` defaults to ``D``). A loss
then contrasts each pair inside its own space (e.g. the video-audio pair in ``"video_audio"``),
so information only two modalities share (background sound and scene, speech and captions) can
stay in that pair's space without being squeezed out by the third modality in the shared one.
The heads are linear so that with ``spaces=()`` the model is exactly MCN.

Outputs of :class:`MCNModel` (keys only for the modalities in the batch)::

    {"video": [B, D], "audio": [B, D], "text": [B, D],
     "recon": {modality: [B, target]},             # if reconstruction
     "recon_targets": {modality: [B, target]},     # if reconstruction
     "spaces": {name: {modality: [B, space_dim]}}} # if spaces
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn.geu import GatedEmbeddingUnit
from emojax.nn.resdavenet import ResDAVEnet, ResDAVEnetConfig, time_mean
from emojax.nn.transformer import dense

Dtype = Any
MODALITIES = ("video", "audio", "text")


def _shape_error(field: str, want: str, got, hint: str = "") -> ValueError:
    return ValueError(f"batch[{field!r}] must be {want}, got shape {tuple(got)}{hint}")


class VideoTower(nn.Module):
    """``video: [B, video_dim]`` -> ``(embedding [B, D], target [B, video_dim])``."""

    features: int
    video_dim: int = 4096
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, video: jax.Array) -> tuple[jax.Array, jax.Array]:
        if video.ndim != 2 or video.shape[-1] != self.video_dim:
            raise _shape_error("video", f"[batch, {self.video_dim}]", video.shape)
        emb = GatedEmbeddingUnit(self.features, normalize=False, dtype=self.dtype, name="geu")(
            video.astype(self.dtype)
        )
        return emb, video


class AudioTower(nn.Module):
    """``mel: [B, T, feat_dim]`` (+ ``nframes: [B]``) -> ``(embedding [B, D], pooled [B,
    widths[-1]])``. ``nframes`` is used in eval mode only (the official code averages every
    frame in training), unless ``pool_valid_in_train``."""

    features: int
    audio: ResDAVEnetConfig = ResDAVEnetConfig()
    pool_valid_in_train: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, mel: jax.Array, nframes: jax.Array | None = None, *, train: bool = False
    ) -> tuple[jax.Array, jax.Array]:
        c = self.audio
        if mel.ndim != 3 or mel.shape[-1] != c.feat_dim:
            raise _shape_error(
                "audio",
                f"[batch, frames, {c.feat_dim}]",
                mel.shape,
                " (time-major log-mel, bins last; transpose a PyTorch [batch, bins, frames])",
            )
        if nframes is not None and nframes.shape != mel.shape[:1]:
            raise _shape_error("audio_nframes", f"[batch] = {mel.shape[:1]}", nframes.shape)
        feats = ResDAVEnet(c, self.dtype, name="resdavenet")(mel, train=train)
        use_valid = nframes is not None and (not train or self.pool_valid_in_train)
        pooled = time_mean(feats, nframes if use_valid else None, input_frames=mel.shape[1])
        width = c.out_dim
        x = GatedEmbeddingUnit(width, normalize=False, dtype=self.dtype, name="geu")(
            pooled.astype(self.dtype)
        )
        emb = dense(self.features, ("mlp", "embed"), dtype=self.dtype, name="projection")(x)
        return emb, pooled


class TextTower(nn.Module):
    """``words: [B, W, word_dim]``, ``mask: [B, W]`` -> ``(embedding [B, D], pooled [B, D])``."""

    features: int
    word_dim: int = 300
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, words: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        if words.ndim != 3 or words.shape[-1] != self.word_dim:
            raise _shape_error("text", f"[batch, words, {self.word_dim}]", words.shape)
        if mask.shape != words.shape[:2]:
            raise _shape_error(
                "text_mask", f"[batch, words] = {words.shape[:2]} (as batch['text'])", mask.shape
            )
        h = nn.relu(
            dense(self.features, ("embed", "mlp"), dtype=self.dtype, name="fc")(
                words.astype(self.dtype)
            )
        )
        # h >= 0 after the ReLU: filling padding with 0 is the masked max (0 for no valid word)
        pooled = jnp.max(jnp.where(mask.astype(bool)[..., None], h, 0), axis=1)
        emb = GatedEmbeddingUnit(self.features, normalize=False, dtype=self.dtype, name="geu")(
            pooled
        )
        return emb, pooled


class ReconHead(nn.Module):
    """``x: [B, D]`` -> ``relu(fc2(relu(fc1(x))))`` ``[B, target_dim]``."""

    target_dim: int
    hidden: int = 1024
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(dense(self.hidden, ("embed", "mlp"), dtype=self.dtype, name="fc1")(x))
        return nn.relu(dense(self.target_dim, ("mlp", "embed"), dtype=self.dtype, name="fc2")(x))


def parse_spaces(spaces: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``("video_audio", ...)`` -> ``{"video_audio": ("video", "audio"), ...}``; a clear error
    for an unknown modality, a repeated name or a space of fewer than two modalities."""
    out = {}
    for name in spaces:
        mods = tuple(name.split("_"))
        bad = [m for m in mods if m not in MODALITIES]
        if bad or len(set(mods)) != len(mods) or len(mods) < 2 or name in out:
            raise ValueError(
                f"spaces entry {name!r}: a space is named by two or more distinct modalities of "
                f"{MODALITIES} joined by '_' (e.g. 'video_audio'), each name once; got "
                f"{'unknown ' + str(bad) if bad else 'a repeat or fewer than two'}"
            )
        out[name] = mods
    return out


class MCNModel(nn.Module):
    """The MCN towers, reconstruction heads and optional extra embedding spaces.

    ``__call__(batch, train=False)`` -> the output dict of the module docstring. ``embed_dim``:
    6144 in the official code, 4096 in the seed's slides. Params: ``video``, ``audio``, ``text``
    (the towers), ``recon_{modality}`` (when ``reconstruction``), ``space_{name}_{modality}``.
    Batch norm (audio tower) as :class:`~emojax.nn.resdavenet.ResDAVEnet`: ``train=True`` needs
    ``mutable=["batch_stats"]``.
    """

    embed_dim: int = 6144
    video_dim: int = 4096
    word_dim: int = 300
    audio: ResDAVEnetConfig = ResDAVEnetConfig()
    reconstruction: bool = True
    recon_hidden: int = 1024
    spaces: tuple[str, ...] = ()
    space_dim: int | None = None
    pool_valid_in_train: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool = False) -> dict:
        spaces = parse_spaces(tuple(self.spaces))
        present = [m for m in MODALITIES if m in batch]
        if not present:
            raise ValueError(f"batch has none of {MODALITIES}; keys: {sorted(batch)}")
        sizes = {m: batch[m].shape[0] if batch[m].ndim else None for m in present}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"batch sizes differ between modalities: {sizes}")
        if "text" in batch and "text_mask" not in batch:
            raise ValueError("batch has 'text' but no 'text_mask' [batch, words] (True = word)")
        d = self.embed_dim
        emb, targets = {}, {}
        if "video" in batch:
            emb["video"], targets["video"] = VideoTower(
                d, self.video_dim, self.dtype, name="video"
            )(batch["video"])
        if "audio" in batch:
            emb["audio"], targets["audio"] = AudioTower(
                d, self.audio, self.pool_valid_in_train, self.dtype, name="audio"
            )(batch["audio"], batch.get("audio_nframes"), train=train)
        if "text" in batch:
            emb["text"], targets["text"] = TextTower(d, self.word_dim, self.dtype, name="text")(
                batch["text"], batch["text_mask"]
            )
        out: dict = dict(emb)
        if self.reconstruction:
            out["recon"] = {
                m: ReconHead(
                    targets[m].shape[-1], self.recon_hidden, self.dtype, name=f"recon_{m}"
                )(emb[m])
                for m in emb
            }
            out["recon_targets"] = targets
        if spaces:
            dim = self.space_dim or d
            out["spaces"] = {
                name: {
                    m: dense(dim, ("embed", "mlp"), dtype=self.dtype, name=f"space_{name}_{m}")(
                        emb[m]
                    )
                    for m in mods
                    if m in emb
                }
                for name, mods in spaces.items()
            }
        return out
