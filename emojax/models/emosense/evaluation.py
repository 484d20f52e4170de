"""EmoSense evaluation beyond the trainer's metrics: per-example outputs of a trained workdir
(for the report's plots) and the zero-shot identifier scores.

The results-table metrics (retrieval R@k, head R@k, macro-F1 under both decision rules, set
sizes, alphas) are computed by :class:`emojax.models.emosense.evaluators.EmoSenseEvaluator`, which
the trainer runs over every example of a split (``emojax eval``, ``emojax quickstart``); this
module reuses that evaluator's ``predict`` through the trainer's whole-split loop
(``emojax.train.loop.predict_splits``), so there is one evaluation path.
"""

from __future__ import annotations

import jax
import numpy as np

from emojax.models.emosense.evaluators import (  # noqa: F401  (re-exported)
    PROTOTYPE_EXAMPLES,
    EmoSenseEvaluator,
    emotion_prototypes,
    macro_f1,
    predicted_sets,
    recall_at,
    support_sets,
    threshold_sets,
    unit,
)


def restore_variables(config, workdir: str):
    """(method, model, variables) of the newest checkpoint in ``workdir``."""
    from emojax.train import restore

    restored = restore(config, workdir)
    state = restored.state
    variables = {"params": jax.device_get(state.params), **jax.device_get(state.model_state)}
    return restored.method, restored.model, variables


def split_outputs(config, workdir: str, split: str = "test", prototype_examples=None):
    """The evaluator's per-example outputs of ``split`` for the newest checkpoint in
    ``workdir``, and what the report needs besides.

    Returns ``(method, model, variables, outputs, prototypes)``: ``outputs`` maps names to
    ``[n, ...]`` arrays (see :class:`EmoSenseEvaluator`), ``prototypes`` the [8, E] emotion
    prototypes of the first ``prototype_examples`` training examples.
    """
    from emojax.train.loop import predict_splits

    limit = PROTOTYPE_EXAMPLES if prototype_examples is None else prototype_examples
    evaluator = EmoSenseEvaluator(config.model.head_normalizer, limit)
    restored, outputs = predict_splits(config, workdir, evaluator, {"train": limit, split: 0})
    state = restored.state
    variables = {"params": jax.device_get(state.params), **jax.device_get(state.model_state)}
    prototypes = evaluator.prototypes(outputs["train"])
    return restored.method, restored.model, variables, outputs[split], prototypes


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
