"""The ``emosense`` Method: losses, metrics and data of EmoSense-MMC (configs/emosense/*.py).

The network is :class:`emojax.models.emosense.model.EmoSenseModel`. Objective:

    symmetric InfoNCE(composed senses, emotion embedding)
      + w_fy * FY_alpha(head, emotion) + w_id * mean_k InfoNCE(signal_k, word_k)
      + w_view * InfoNCE(attentive view, non-attentive view)

Data: the ``emojax_senses`` builder (``emojax.data.senses``) plus one adapter that adds the text
side of the five words: :class:`WordFeatures` (frozen text tower) or :class:`WordTokens`
(fine-tuned text tower).
"""

from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import clip_loss
from emojax.models.base import Batch, Method, Variables
from emojax.models.emosense.compose import NUM_SENSES
from emojax.models.emosense.model import (
    NUM_EMOTIONS,
    TEXT_DIM,
    EmoSenseModel,
    check_normalizer,
    emotion_loss,
)


def same_rows(a: jnp.ndarray) -> jnp.ndarray:
    """[batch, ...] -> [batch, batch] float32: 1 where two rows are identical (multi-positives)."""
    flat = a.reshape(a.shape[0], -1)
    return jnp.all(flat[:, None, :] == flat[None, :, :], axis=-1).astype(jnp.float32)


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
        check_normalizer(m.head_normalizer)
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
        from emojax.models.emosense.text import identifier_table

        d = self.config.data
        return identifier_table(
            self.vocabulary,
            self.config.model.get("minilm_path") or None,
            d.get("cache_dir") or None,
        )

    def word_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        from emojax.convert.bert import load_minilm
        from emojax.models.emosense.text import tokenize_words

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

    def evaluators(self, split: str):
        """One :class:`EmoSenseEvaluator` over the whole split (prototypes from the train split)."""
        from emojax.models.emosense.evaluators import EmoSenseEvaluator

        del split
        return [EmoSenseEvaluator(self.config.model.head_normalizer)]

    def prepare_data(self) -> None:
        """Build ``emojax_senses`` into data.data_dir (TFDS default dir) if it is missing."""
        from emojax.data import senses

        d = self.config.data
        senses.get_builder(
            d.get("data_dir") or None,
            seed=d.data_seed,
            num_train=d.num_train,
            num_validation=d.num_validation,
            num_test=d.num_test,
        )

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
