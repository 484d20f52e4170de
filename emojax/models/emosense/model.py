"""EmoSense-MMC (seed 000): inferring emotion from the five senses by multimodal contrast.

One example is a scene: an image (sight), a sound, touch channels (pressure, temperature), the
five sense identifiers (words of the NRC lexicon: sight, sound, touch, smell, taste) and a face
showing the scene's emotion. The model

  sense encoders     sight: ViT on the image; sound: log-mel + spectrogram transformer;
                     touch: MLP on the scalar channels; smell / taste: the identifier's text
                     embedding (the seed derives them from identifier text)
  identifiers        every word goes through the text tower (frozen MiniLM features by default,
                     fine-tuned MiniLM in the accelerator configs) and a projection into the sense
                     space; sight / sound / touch signals are contrasted with their words (the
                     CLIP / CLAP step), which is what makes zero-shot identifier scoring work
  composition        the five unit sense vectors on the complex plane (zeta = exp(2 pi i / 5),
                     learned weights), projected into the shared space (compose.py)
  emotion view       EmoCo: face ViT -> features z; attentive view alpha-entmax(W z) * z with a
                     learnable alpha, non-attentive view softmax(W z) * z; the views are contrasted
                     and the attentive view is the emotion embedding
  emotion head       logits from the composed senses; entmax_bisect with learnable alpha and its
                     Fenchel-Young loss against the lexicon's emotion distribution

The objective, the data adapters and the Method are in ``method.py``; this module holds the
Flax modules and the pure functions of the emotion head.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax import ops
from emojax.losses import CLIP_INIT_LOG_SCALE, l2_normalize
from emojax.models.base import Batch
from emojax.models.emosense.compose import ComplexComposition
from emojax.nn.alpha import alpha_init_fn, learnable_alpha
from emojax.nn.bert import BertConfig, BertEncoder
from emojax.nn.vit import ViT, ViTConfig

NUM_EMOTIONS = 8
TEXT_DIM = 384  # all-MiniLM-L6-v2
HEAD_NORMALIZERS = ("entmax_bisect", "softmax")


def check_normalizer(name: str) -> None:
    """Raises ValueError unless ``name`` is one of :data:`HEAD_NORMALIZERS`."""
    if name not in HEAD_NORMALIZERS:
        raise ValueError(f"model.head_normalizer must be one of {HEAD_NORMALIZERS}, got {name!r}")


def normalize_logits(logits: jnp.ndarray, normalizer: str, alpha: jnp.ndarray) -> jnp.ndarray:
    """Emotion distribution from logits: [batch, 8] -> [batch, 8]."""
    if normalizer == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    return ops.entmax_bisect(logits, alpha, axis=-1)


def emotion_loss(logits, targets, normalizer: str, alpha) -> jnp.ndarray:
    """Per-example loss of the emotion head against target distributions: [batch].

    entmax_bisect: the alpha-entmax Fenchel-Young loss; softmax: cross-entropy (the alpha = 1 FY
    loss) -- the same family, which makes the softmax ablation an honest comparison.
    """
    if normalizer == "softmax":
        return -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return ops.entmax_bisect_loss(logits, targets, alpha=alpha, reduction="none")


class TouchEncoder(nn.Module):
    """touch [batch, 2] (pressure, temperature) -> [batch, dim]."""

    dim: int
    hidden: int = 64

    @nn.compact
    def __call__(self, touch: jnp.ndarray) -> jnp.ndarray:
        x = nn.gelu(nn.Dense(self.hidden, name="fc1")(touch.astype(jnp.float32)))
        x = nn.gelu(nn.Dense(self.hidden, name="fc2")(x))
        return nn.Dense(self.dim, name="out")(x)


class EmoCoView(nn.Module):
    """EmoCo emotion views of a face feature z: [batch, dim].

    attention logits a = W z; attentive view = alpha-entmax(a) * z * dim (sparse: some feature
    channels are switched off), non-attentive view = softmax(a) * z * dim. Returns
    (attentive [batch, dim], non_attentive [batch, dim], alpha scalar, attention [batch, dim]).
    """

    alpha_init: float = 1.5

    @nn.compact
    def __call__(self, z: jnp.ndarray):
        dim = z.shape[-1]
        scores = nn.Dense(dim, name="attention")(z).astype(jnp.float32)
        alpha = learnable_alpha(self, "raw_alpha", self.alpha_init)
        attentive_weights = ops.entmax_bisect(scores, alpha, axis=-1)
        soft_weights = jax.nn.softmax(scores, axis=-1)
        return attentive_weights * z * dim, soft_weights * z * dim, alpha, attentive_weights


class EmoSenseModel(nn.Module):
    """The EmoSense-MMC network; ``__call__(batch)`` returns a dict of named outputs (see
    :meth:`outputs`). Batch fields as in ``emojax.data.senses.FIELDS`` plus ``word_features``
    [batch, 5, 384] (frozen text tower) or ``word_tokens``/``word_token_mask`` [batch, 5, T]."""

    sense_dim: int = 64
    embed_dim: int = 64
    image_vit: dict | None = None
    face_vit: dict | None = None
    audio: dict | None = None
    text_tower: str = "frozen"  # or "finetune" (a BertEncoder inside the model)
    bert: dict | None = None
    head_normalizer: str = "entmax_bisect"
    alpha_init: float = 1.5
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        check_normalizer(self.head_normalizer)
        self.image_tower = ViT(ViTConfig(**(self.image_vit or {})), dtype=self.dtype)
        self.face_tower = ViT(ViTConfig(**(self.face_vit or {})), dtype=self.dtype)
        self.audio_tower = build_audio_tower(self.audio or {}, self.dtype)
        self.touch_tower = TouchEncoder(self.sense_dim)
        if self.text_tower == "finetune":
            self.text_encoder = BertEncoder(BertConfig(**(self.bert or {})), dtype=self.dtype)
        elif self.text_tower != "frozen":
            raise ValueError(
                f"model.text_tower must be 'frozen' or 'finetune', got {self.text_tower!r}"
            )
        self.sight_proj = nn.Dense(self.sense_dim, name="sight_proj")
        self.sound_proj = nn.Dense(self.sense_dim, name="sound_proj")
        self.word_proj = nn.Sequential(
            [nn.Dense(2 * self.sense_dim), nn.gelu, nn.Dense(self.sense_dim)], name="word_proj"
        )
        self.compose = ComplexComposition(self.embed_dim, name="compose")
        self.face_proj = nn.Dense(self.embed_dim, name="face_proj")
        self.view = EmoCoView(self.alpha_init, name="view")
        self.emotion_proj = nn.Dense(self.embed_dim, name="emotion_proj")
        self.head = nn.Sequential(
            [nn.Dense(2 * self.embed_dim), nn.gelu, nn.Dense(NUM_EMOTIONS)], name="head"
        )
        scale = lambda name: self.param(name, nn.initializers.constant(CLIP_INIT_LOG_SCALE), ())
        self.log_scale_senses = scale("log_scale_senses")
        self.log_scale_identifiers = scale("log_scale_identifiers")
        self.log_scale_views = scale("log_scale_views")
        self.raw_head_alpha = self.param(
            "raw_head_alpha", alpha_init_fn(self.alpha_init), (), jnp.float32
        )

    # -- pieces (also used by inversion, zero-shot scoring and the report) -------------------

    def text_features(self, batch: Batch) -> jnp.ndarray:
        """Text-tower features of the five words: [batch, 5, 384]."""
        if self.text_tower == "frozen":
            return batch["word_features"].astype(jnp.float32)
        tokens, mask = batch["word_tokens"], batch["word_token_mask"]
        b, k, t = tokens.shape
        flat = self.text_encoder.sentence_embedding(
            tokens.reshape(b * k, t), mask.reshape(b * k, t)
        )
        return flat.reshape(b, k, -1)

    def identifier_vectors(self, text_features: jnp.ndarray) -> jnp.ndarray:
        """Unit identifier vectors in the sense space: [..., 384] -> [..., sense_dim]."""
        return l2_normalize(self.word_proj(text_features.astype(jnp.float32)))

    def signal_vectors(self, batch: Batch, *, train: bool = False) -> jnp.ndarray:
        """Unit sense vectors of sight, sound, touch from their signals: [batch, 3, sense_dim]."""
        image = batch["image"].astype(jnp.float32) / 127.5 - 1.0
        sight = self.sight_proj(self.image_tower.embed(image, train=train))
        sound = self.sound_proj(self.audio_tower(batch["audio"].astype(jnp.float32), train=train))
        touch = self.touch_tower(batch["touch"])
        return l2_normalize(jnp.stack([sight, sound, touch], axis=1).astype(jnp.float32))

    def from_senses(self, senses: jnp.ndarray, weights: jnp.ndarray | None = None):
        """Composed sense embedding and emotion logits from unit sense vectors [batch, 5, d]:
        ([batch, embed_dim], [batch, 8]). ``weights`` [5] or [batch, 5] overrides the learned.
        """
        composed = self.compose(senses, weights)
        return composed, self.head(composed).astype(jnp.float32)

    def emotion_views(self, face: jnp.ndarray, *, train: bool = False):
        """EmoCo views of faces [batch, 32, 32, 1] uint8: dict of embeddings and the view alpha."""
        z = self.face_proj(
            self.face_tower.embed(face.astype(jnp.float32) / 127.5 - 1.0, train=train)
        )
        attentive, soft, alpha, attention = self.view(z.astype(jnp.float32))
        return {
            "emotion_embedding": self.emotion_proj(attentive),
            "view_attentive": attentive,
            "view_soft": soft,
            "view_alpha": alpha,
            "view_attention": attention,
        }

    def head_alpha(self) -> jnp.ndarray:
        return ops.alpha_from_raw(self.raw_head_alpha)

    def __call__(self, batch: Batch, train: bool = False) -> dict[str, jnp.ndarray]:
        identifiers = self.identifier_vectors(self.text_features(batch))  # [b, 5, d]
        signals = self.signal_vectors(batch, train=train)  # [b, 3, d]
        senses = jnp.concatenate([signals, identifiers[:, 3:]], axis=1)
        composed, logits = self.from_senses(senses)
        out = {
            "senses": senses,
            "identifiers": identifiers,
            "sense_embedding": composed,
            "emotion_logits": logits,
            "head_alpha": self.head_alpha(),
            "log_scale_senses": self.log_scale_senses,
            "log_scale_identifiers": self.log_scale_identifiers,
            "log_scale_views": self.log_scale_views,
        }
        return out | self.emotion_views(batch["face"], train=train)


def build_audio_tower(config: dict, dtype) -> nn.Module:
    """Log-mel front end + spectrogram transformer from emojax.nn, pooled to [batch, hidden]."""
    from emojax.nn.audio import AudioEncoder, AudioEncoderConfig

    return AudioEncoder(AudioEncoderConfig(**config), dtype=dtype)
