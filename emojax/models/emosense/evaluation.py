"""Full-split evaluation of EmoSense: predictions, retrieval, emotion-set F1 (numpy on host).

Metrics (all on one split, e.g. the word-disjoint test split):
  senses->emotion R@1 / R@5  rank the 8 emotions by cosine between the composed sense embedding
                             and each emotion's prototype (mean unit emotion embedding of faces of
                             that label, from the training split); hit if the scene's label is
                             among the top k
  head R@1 / R@5             the same with the emotion head's logits as scores
  macro-F1                   predicted emotion set vs the lexicon multi-hot, F1 per emotion,
                             averaged over the 8 emotions. entmax: the set is the support (p > 0);
                             softmax has no zeros, so its set is {p > 1/8}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emojax.models.emosense.model import NUM_EMOTIONS, normalize_logits

OUTPUT_KEYS = ("sense_embedding", "emotion_embedding", "emotion_logits", "senses")
TARGET_KEYS = ("label", "emotion", "emotion_multi_hot", "word_ids")


def restore_variables(config, workdir: str):
    """(method, model, variables) of the newest checkpoint in ``workdir``."""
    from emojax.train import restore

    restored = restore(config, workdir)
    state = restored.state
    variables = {"params": jax.device_get(state.params), **jax.device_get(state.model_state)}
    return restored.method, restored.model, variables


def iterate_batches(method, split: str, batch_size: int, limit: int | None = None):
    """Preprocessed batches (dicts of numpy arrays) of a split, in order; last one padded."""
    source = method.data_source(split)
    transforms = method.preprocess(split)
    n = len(source) if limit is None else min(limit, len(source))
    for start in range(0, n, batch_size):
        rows = []
        for i in range(start, min(start + batch_size, n)):
            example = source[i]
            for t in transforms:
                example = t.map(example)
            rows.append(example)
        real = len(rows)
        rows += [rows[-1]] * (batch_size - real)  # one compiled shape
        yield {k: np.stack([r[k] for r in rows]) for k in rows[0]}, real


def predict(method, model, variables, split: str, *, batch_size: int = 256, limit=None) -> dict:
    """Model outputs and targets for every example of ``split``: dict of [n, ...] numpy arrays,
    plus the scalars head_alpha, view_alpha and the learned sense weights."""
    apply = jax.jit(lambda v, b: model.apply(v, b, train=False))
    collected: dict[str, list] = {k: [] for k in OUTPUT_KEYS + TARGET_KEYS}
    out = None
    for batch, real in iterate_batches(method, split, batch_size, limit):
        out = apply(variables, {k: jnp.asarray(v) for k, v in batch.items()})
        for k in OUTPUT_KEYS:
            collected[k].append(np.asarray(out[k])[:real])
        for k in TARGET_KEYS:
            collected[k].append(batch[k][:real])
    if out is None:
        raise ValueError(f"split {split!r} is empty: nothing to evaluate")
    result = {k: np.concatenate(v) for k, v in collected.items()}
    result["head_alpha"] = float(out["head_alpha"])
    result["view_alpha"] = float(out["view_alpha"])
    result["probs"] = np.asarray(
        normalize_logits(
            jnp.asarray(result["emotion_logits"]),
            method.config.model.head_normalizer,
            jnp.asarray(result["head_alpha"]),
        )
    )
    return result


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def emotion_prototypes(emotion_embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit mean of the unit emotion embeddings of each label: [n, E], [n] -> [8, E]."""
    z = unit(emotion_embeddings)
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
    """Macro-averaged F1 over classes of multi-label sets: [n, C] bool, [n, C] bool."""
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    tp = np.sum(predicted & truth, axis=0)
    fp = np.sum(predicted & ~truth, axis=0)
    fn = np.sum(~predicted & truth, axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
    return float(np.mean(f1))


def predicted_sets(probs: np.ndarray, normalizer: str) -> np.ndarray:
    """Emotion sets from distributions: the support for entmax, {p > 1/C} for softmax."""
    if normalizer == "softmax":
        return probs > 1.0 / probs.shape[1]
    return probs > 0


def test_metrics(pred: dict, prototypes: np.ndarray, normalizer: str) -> dict[str, float]:
    """The results-table metrics of one split's predictions (see the module docstring)."""
    retrieval = unit(pred["sense_embedding"]) @ prototypes.T
    labels = pred["label"]
    sets = predicted_sets(pred["probs"], normalizer)
    return {
        "senses_emotion_r1": recall_at(retrieval, labels, 1),
        "senses_emotion_r5": recall_at(retrieval, labels, 5),
        "head_r1": recall_at(pred["emotion_logits"], labels, 1),
        "head_r5": recall_at(pred["emotion_logits"], labels, 5),
        "macro_f1": macro_f1(sets, pred["emotion_multi_hot"]),
        "mean_set_size": float(sets.sum(axis=1).mean()),
        "head_alpha": pred["head_alpha"],
        "view_alpha": pred["view_alpha"],
        "num_examples": int(len(labels)),
    }


def zero_shot_identifiers(
    signal_vectors: np.ndarray, vocab_vectors: np.ndarray, k: int = 5
) -> np.ndarray:
    """Indices of the k vocabulary words closest to each signal: [n, d], [V, d] -> [n, k]."""
    scores = unit(signal_vectors) @ unit(vocab_vectors).T
    return np.argsort(-scores, axis=1)[:, :k]


def zero_shot_metrics(
    method, model, variables, pred: dict, split: str, k: int = 5
) -> dict[str, float]:
    """Zero-shot identifier scoring of the sight / sound / touch signals of ``split`` against
    the words of that split's (word-disjoint) vocabulary, the seed's CLIP/CLAP step.

    exact@k: the scene's own word is among the k nearest words; emotion@1: the nearest word
    carries exactly the same lexicon emotions as the scene's word (the renderings depend only on
    the word's emotions, so this is what a signal can determine).
    """
    from emojax.data import senses
    from emojax.models.emosense.compose import SENSES
    from emojax.models.emosense.model import EmoSenseModel

    words = senses.split_vocabulary(split, method.config.data.data_seed)
    index = {w: i for i, w in enumerate(method.vocabulary)}
    ids = np.array([index[w] for w in words])
    table = method.identifier_table()[ids]
    vocab = np.asarray(
        jax.jit(lambda t: model.apply(variables, t, method=EmoSenseModel.identifier_vectors))(table)
    )
    emotions = method.word_emotions()
    metrics = {}
    for s in range(3):
        top = ids[zero_shot_identifiers(pred["senses"][:, s], vocab, k)]
        truth = pred["word_ids"][:, s]
        metrics[f"zero_shot_{SENSES[s]}_exact@{k}"] = float(
            np.mean(np.any(top == truth[:, None], 1))
        )
        same = np.all(emotions[top[:, 0]] == emotions[truth], axis=1)
        metrics[f"zero_shot_{SENSES[s]}_emotion@1"] = float(np.mean(same))
    return metrics
