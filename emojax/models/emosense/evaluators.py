"""EmoSense's whole-split evaluator (Method interface v2): the results-table metrics.

Metrics (all on every example of one split, e.g. the word-disjoint test split):

  senses_emotion_r1 / _r5  rank the 8 emotions by cosine between the composed sense embedding and
                           each emotion's prototype (unit mean of the unit emotion embeddings of
                           the faces of that label, from the first ``PROTOTYPE_EXAMPLES`` examples
                           of the TRAIN split: the evaluator's reference split); hit if the
                           scene's label is among the top k
  head_r1 / head_r5        the same with the emotion head's logits as scores
  macro_f1_support         predicted emotion set {p > 0} (the entmax support) vs the lexicon
                           multi-hot, binary F1 per emotion, averaged over the 8 emotions
  macro_f1_threshold       the same with the set {p > 1/8}
  macro_f1                 the head's natural rule: support for entmax, threshold for softmax
                           (softmax has no zeros: its support is always all 8 emotions)
  mean_set_size[_support|_threshold]   mean size of those predicted sets
  loss_emotion_fy          mean per-example Fenchel-Young loss of the head (cross-entropy for
                           softmax); the other loss terms are in-batch contrastive, so they have
                           no per-example value and are not reported here
  head_alpha, view_alpha   the learned alphas

Recall ties count in the label's favour (``recall_at``), as before the v2 interface, so the
numbers stay comparable; ``emojax.metrics.recall_at_k`` breaks ties pessimistically (with float
scores ties practically never happen). This module must not import ``emojax.train``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from emojax.metrics import multilabel_f1
from emojax.models.base import Evaluator
from emojax.models.emosense.model import NUM_EMOTIONS, emotion_loss, normalize_logits

#: training examples the emotion prototypes are built from (as the quickstart always did)
PROTOTYPE_EXAMPLES = 4000


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def emotion_prototypes(emotion_embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit mean of the unit emotion embeddings of each label: [n, E], [n] -> [8, E]."""
    z = unit(np.asarray(emotion_embeddings, np.float64))
    protos = np.stack(
        [
            z[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(z.shape[1])
            for c in range(NUM_EMOTIONS)
        ]
    )
    return unit(protos)


def recall_at(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label ranks in the top k (ties count in the label's favour)."""
    label_score = np.take_along_axis(scores, labels[:, None], axis=1)
    return float(np.mean(np.sum(scores > label_score, axis=1) < k))


def macro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Macro-averaged binary F1 over the classes of multi-label sets: [n, C], [n, C] (bool).
    A class absent from both counts 0 (``emojax.metrics.multilabel_f1``)."""
    return multilabel_f1(truth, predicted, average="macro")


def support_sets(probs: np.ndarray) -> np.ndarray:
    """{p > 0}: the support (entmax); all classes for softmax."""
    return probs > 0


def threshold_sets(probs: np.ndarray) -> np.ndarray:
    """{p > 1/C}: the classes above uniform."""
    return probs > 1.0 / probs.shape[1]


def predicted_sets(probs: np.ndarray, normalizer: str) -> np.ndarray:
    """The head's natural rule: the support for entmax, {p > 1/C} for softmax."""
    return threshold_sets(probs) if normalizer == "softmax" else support_sets(probs)


class EmoSenseEvaluator(Evaluator):
    """Per-example embeddings, head outputs and targets -> the results-table metrics.

    ``predict`` outputs (one row per example): sense_embedding, emotion_embedding, senses (the
    five sense vectors), emotion_logits, probs, loss_emotion_fy, label, emotion_multi_hot,
    word_ids, head_alpha, view_alpha. The report (``report.py``) reuses them.
    """

    name = "emosense"
    reference_split = "train"
    reference_limit = PROTOTYPE_EXAMPLES

    def __init__(self, normalizer: str, prototype_examples: int = PROTOTYPE_EXAMPLES):
        self.normalizer = normalizer
        self.reference_limit = prototype_examples

    def predict(self, model, variables, batch):
        out = model.apply(variables, batch, train=False)
        logits = out["emotion_logits"]
        size = logits.shape[0]
        per_example = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (size,))
        return {
            "sense_embedding": out["sense_embedding"].astype(jnp.float32),
            "emotion_embedding": out["emotion_embedding"].astype(jnp.float32),
            "senses": out["senses"].astype(jnp.float32),
            "emotion_logits": logits.astype(jnp.float32),
            "probs": normalize_logits(logits, self.normalizer, out["head_alpha"]),
            "loss_emotion_fy": emotion_loss(
                logits, batch["emotion"], self.normalizer, out["head_alpha"]
            ).astype(jnp.float32),
            "label": batch["label"],
            "emotion_multi_hot": batch["emotion_multi_hot"],
            "word_ids": batch["word_ids"],
            "head_alpha": per_example(out["head_alpha"]),
            "view_alpha": per_example(out["view_alpha"]),
        }

    def prototypes(self, reference: dict) -> np.ndarray:
        return emotion_prototypes(reference["emotion_embedding"], reference["label"])

    def compute(self, outputs, reference=None):
        if reference is None:
            raise ValueError("EmoSenseEvaluator needs the train split's outputs (prototypes)")
        labels = outputs["label"]
        retrieval = unit(outputs["sense_embedding"]) @ self.prototypes(reference).T
        logits, probs = outputs["emotion_logits"], outputs["probs"]
        truth = outputs["emotion_multi_hot"]
        support, threshold = support_sets(probs), threshold_sets(probs)
        natural = threshold if self.normalizer == "softmax" else support
        return {
            "senses_emotion_r1": recall_at(retrieval, labels, 1),
            "senses_emotion_r5": recall_at(retrieval, labels, 5),
            "head_r1": recall_at(logits, labels, 1),
            "head_r5": recall_at(logits, labels, 5),
            "macro_f1": macro_f1(natural, truth),
            "macro_f1_support": macro_f1(support, truth),
            "macro_f1_threshold": macro_f1(threshold, truth),
            "mean_set_size": float(natural.sum(axis=1).mean()),
            "mean_set_size_support": float(support.sum(axis=1).mean()),
            "mean_set_size_threshold": float(threshold.sum(axis=1).mean()),
            "loss_emotion_fy": float(np.mean(outputs["loss_emotion_fy"])),
            "head_alpha": float(outputs["head_alpha"][0]),
            "view_alpha": float(outputs["view_alpha"][0]),
        }


__all__ = [
    "PROTOTYPE_EXAMPLES",
    "EmoSenseEvaluator",
    "emotion_prototypes",
    "macro_f1",
    "predicted_sets",
    "recall_at",
    "support_sets",
    "threshold_sets",
    "unit",
]
