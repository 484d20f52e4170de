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
                     learned weights), projected into the shared space (emosense_compose.py)
  emotion view       EmoCo: face ViT -> features z; attentive view alpha-entmax(W z) * z with a
                     learnable alpha, non-attentive view softmax(W z) * z; the views are contrasted
                     and the attentive view is the emotion embedding
  emotion head       logits from the composed senses; entmax_bisect with learnable alpha and its
                     Fenchel-Young loss against the lexicon's emotion distribution

Objective = symmetric InfoNCE(composed senses, emotion embedding)
          + w_fy * FY_alpha(head, emotion) + w_id * mean_k InfoNCE(signal_k, word_k)
          + w_view * InfoNCE(attentive view, non-attentive view).
"""

from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from emojax import ops
from emojax.losses import CLIP_INIT_LOG_SCALE, clip_loss, l2_normalize
from emojax.models.base import Batch, Method, Metrics, Variables
from emojax.models.emosense_compose import NUM_SENSES, ComplexComposition
from emojax.nn.bert import BertConfig, BertEncoder
from emojax.nn.vit import ViT, ViTConfig

NUM_EMOTIONS = 8
TEXT_DIM = 384  # all-MiniLM-L6-v2
HEAD_NORMALIZERS = ("entmax_bisect", "softmax")


def _check_normalizer(name: str) -> None:
    if name not in HEAD_NORMALIZERS:
        raise ValueError(f"model.head_normalizer must be one of {HEAD_NORMALIZERS}, got {name!r}")


def alpha_init_fn(alpha: float):
    """Initializer of a raw alpha parameter so that ``ops.alpha_from_raw(raw) == alpha``."""
    return lambda key, shape, dtype=jnp.float32: jnp.full(shape, ops.raw_from_alpha(alpha), dtype)


def learnable_alpha(module: nn.Module, name: str, init: float) -> jnp.ndarray:
    """A scalar alpha parameter kept in (1, 2) by ``ops.alpha_from_raw`` (learned)."""
    return ops.alpha_from_raw(module.param(name, alpha_init_fn(init), (), jnp.float32))


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
        _check_normalizer(self.head_normalizer)
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


def same_rows(a: jnp.ndarray) -> jnp.ndarray:
    """[batch, ...] -> [batch, batch] float32: 1 where two rows are identical (multi-positives)."""
    flat = a.reshape(a.shape[0], -1)
    return jnp.all(flat[:, None, :] == flat[None, :, :], axis=-1).astype(jnp.float32)


def recall_at_k(scores: jnp.ndarray, labels: jnp.ndarray, k: int) -> jnp.ndarray:
    """Fraction of rows whose label is among the k highest scores: scores [b, C], labels [b]."""
    label_score = jnp.take_along_axis(scores, labels[:, None], axis=-1)
    rank = jnp.sum(scores > label_score, axis=-1)  # ties count in the label's favour
    return jnp.mean(rank < k)


class WordFeatures(grain.transforms.Map):
    """Adds the frozen text-tower features of the five words and their lexicon emotions;
    drops the string field ``words`` (not an array a device can hold)."""

    def __init__(self, table: np.ndarray, word_emotions: np.ndarray):
        self.table, self.word_emotions = table, word_emotions

    def map(self, example):
        example = {k: v for k, v in example.items() if k != "words"}
        ids = np.asarray(example["word_ids"])
        example["word_features"] = self.table[ids]
        example["word_emotions"] = self.word_emotions[ids]
        return example


class WordTokens(grain.transforms.Map):
    """Adds the tokens of the five words (fine-tuned text tower) and their lexicon emotions."""

    def __init__(self, tokens: np.ndarray, mask: np.ndarray, word_emotions: np.ndarray):
        self.tokens, self.mask, self.word_emotions = tokens, mask, word_emotions

    def map(self, example):
        example = {k: v for k, v in example.items() if k != "words"}
        ids = np.asarray(example["word_ids"])
        example["word_tokens"] = self.tokens[ids]
        example["word_token_mask"] = self.mask[ids]
        example["word_emotions"] = self.word_emotions[ids]
        return example


class EmoSense(Method):
    """Method ``emosense`` (configs/emosense/*.py)."""

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        _check_normalizer(m.head_normalizer)
        if m.text_tower not in ("frozen", "finetune"):
            raise ValueError(
                f"model.text_tower must be 'frozen' or 'finetune', got {m.text_tower!r}"
            )
        for name in ("w_fy", "w_identifiers", "w_views"):
            if m.get(name, 0.0) < 0:
                raise ValueError(f"model.{name} must be >= 0, got {m.get(name)}")

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def vocabulary(self) -> tuple[str, ...]:
        from emojax.data import senses

        return senses.vocabulary()

    def word_emotions(self) -> np.ndarray:
        """Lexicon emotion multi-hot of every vocabulary word: [V, 8] int8."""
        from emojax.data.lexicon import load_lexicon

        return load_lexicon().emotions

    def identifier_table(self) -> np.ndarray:
        """Frozen MiniLM features of the whole vocabulary: [V, 384] (cached in data.cache_dir)."""
        from emojax.models.emosense_text import identifier_table

        d = self.config.data
        return identifier_table(
            self.vocabulary,
            self.config.model.get("minilm_path") or None,
            d.get("cache_dir") or None,
        )

    def word_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        from emojax.convert.bert import load_minilm
        from emojax.models.emosense_text import tokenize_words

        _, _, tokenizer = load_minilm(self.config.model.get("minilm_path") or None)
        return tokenize_words(tokenizer, self.vocabulary, self.config.model.word_max_length)

    # -- Method interface -------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        m = self.config.model
        return EmoSenseModel(
            sense_dim=m.sense_dim,
            embed_dim=m.embed_dim,
            image_vit=dict(m.image_vit),
            face_vit=dict(m.face_vit),
            audio=dict(m.audio),
            text_tower=m.text_tower,
            bert=dict(m.get("bert", {}) or {}),
            head_normalizer=m.head_normalizer,
            alpha_init=m.alpha_init,
            dtype=jnp.dtype(self.config.train.compute_dtype),
        )

    def example_batch(self, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
        s = lambda shape, dtype: jax.ShapeDtypeStruct((batch_size, *shape), dtype)
        batch = {
            "image": s((32, 32, 3), jnp.uint8),
            "face": s((32, 32, 1), jnp.uint8),
            "audio": s((4000,), jnp.float32),
            "touch": s((2,), jnp.float32),
            "word_ids": s((NUM_SENSES,), jnp.int32),
            "word_emotions": s((NUM_SENSES, NUM_EMOTIONS), jnp.int8),
            "emotion": s((NUM_EMOTIONS,), jnp.float32),
            "emotion_multi_hot": s((NUM_EMOTIONS,), jnp.int32),
            "sentiment": s((2,), jnp.float32),
            "label": s((), jnp.int32),
        }
        if self.config.model.text_tower == "frozen":
            batch["word_features"] = s((NUM_SENSES, TEXT_DIM), jnp.float32)
        else:
            t = self.config.model.word_max_length
            batch["word_tokens"] = s((NUM_SENSES, t), jnp.int32)
            batch["word_token_mask"] = s((NUM_SENSES, t), jnp.int32)
        return batch

    def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> Variables:
        variables = super().init_variables(model, rng, batch)
        if self.config.model.text_tower != "finetune":
            return variables
        from emojax.convert.bert import load_minilm

        _, pretrained, _ = load_minilm(self.config.model.get("minilm_path") or None)
        params = dict(variables["params"])
        params["text_encoder"] = pretrained["params"]
        return {**variables, "params": params}

    def losses(self, out: dict, batch: Batch) -> dict[str, jnp.ndarray]:
        """The four loss terms (scalars) from the model outputs."""
        m = self.config.model
        label_targets = same_rows(batch["label"]) if m.multi_positive else None
        senses_emotion = clip_loss(
            out["sense_embedding"],
            out["emotion_embedding"],
            out["log_scale_senses"],
            targets=label_targets,
        )
        fy = emotion_loss(
            out["emotion_logits"], batch["emotion"], m.head_normalizer, out["head_alpha"]
        ).mean()
        # sight / sound / touch signals vs their words; words with the same lexicon emotions
        # render alike, so they are positives of each other.
        identifier_terms = [
            clip_loss(
                out["senses"][:, k],
                out["identifiers"][:, k],
                out["log_scale_identifiers"],
                targets=same_rows(batch["word_emotions"][:, k]),
            )
            for k in range(3)
        ]
        views = clip_loss(
            out["view_attentive"], out["view_soft"], out["log_scale_views"], targets=label_targets
        )
        return {
            "senses_emotion": senses_emotion,
            "emotion_fy": fy,
            "identifiers": sum(identifier_terms) / 3.0,
            "views": views,
        }

    def total_loss(self, terms: dict[str, jnp.ndarray]) -> jnp.ndarray:
        m = self.config.model
        return (
            terms["senses_emotion"]
            + m.w_fy * terms["emotion_fy"]
            + m.w_identifiers * terms["identifiers"]
            + m.w_views * terms["views"]
        )

    def loss(self, model, variables, batch, rng, *, train):
        out = model.apply(variables, batch, train=train, rngs={"dropout": rng})
        terms = self.losses(out, batch)
        metrics = {f"loss_{k}": v for k, v in terms.items()}
        metrics["head_alpha"] = out["head_alpha"]
        metrics["view_alpha"] = out["view_alpha"]
        metrics["senses_scale"] = jnp.exp(out["log_scale_senses"])
        return self.total_loss(terms).astype(jnp.float32), (metrics, {})

    def eval_metrics(self, model, variables, batch) -> Metrics:
        out = model.apply(variables, batch, train=False)
        terms = self.losses(out, batch)
        logits = out["emotion_logits"]
        probs = normalize_logits(logits, self.config.model.head_normalizer, out["head_alpha"])
        return {
            "loss": self.total_loss(terms),
            **{f"loss_{k}": v for k, v in terms.items()},
            "head_r1": recall_at_k(logits, batch["label"], 1),
            "head_r5": recall_at_k(logits, batch["label"], 5),
            "support_size": jnp.mean(jnp.sum(probs > 0, axis=-1)),
            "head_alpha": out["head_alpha"],
            "view_alpha": out["view_alpha"],
        }

    def data_source(self, split: str):
        from emojax.data import senses

        d = self.config.data
        return senses.load_source(
            split,
            data_dir=d.get("data_dir") or None,
            seed=d.data_seed,
            num_train=d.num_train,
            num_validation=d.num_validation,
            num_test=d.num_test,
        )

    def preprocess(self, split: str) -> list:
        if self.config.model.text_tower == "frozen":
            return [WordFeatures(self.identifier_table(), self.word_emotions())]
        tokens, mask = self.word_tokens()
        return [WordTokens(tokens, mask, self.word_emotions())]
