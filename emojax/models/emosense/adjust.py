"""Per-person adjustment with a Faiss index (seed 000, section 7.5).

A person's own examples -- the model's sense embedding of a situation and the emotion
distribution that person reported for it -- go into a Faiss inner-product index over
L2-normalised embeddings. For a new situation the ``k`` nearest personal examples vote with
weights ``softmax(similarity / temperature)``, and their emotion distribution is blended with the
model's prediction:

    p_adjusted = (1 - blend) * p_model + blend * sum_j w_j q_j

so a person whose "rain" is joyful pulls the prediction for rain-like situations towards joy,
and situations far from everything they rated keep (close to) the model's prediction when
``min_similarity`` is set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np


def _faiss():
    try:
        import faiss
    except ImportError as err:  # a runtime dependency; a broken install gets a clear message
        raise ImportError(
            "per-person adjustment needs Faiss: pip install faiss-cpu (a dependency of emojax)"
        ) from err
    return faiss


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _check_distributions(name: str, q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float32)
    if q.ndim != 2:
        raise ValueError(f"{name} must be [n, num_emotions], got shape {q.shape}")
    if np.any(q < 0) or not np.allclose(q.sum(-1), 1.0, atol=1e-3):
        raise ValueError(f"{name} rows must be probability distributions (>= 0, summing to 1)")
    return q


@dataclass
class PersonalIndex:
    """A Faiss index of one person's (sense embedding, emotion distribution) examples.

    embeddings: [n, dim] sense embeddings; emotions: [n, num_emotions] distributions.
    """

    embeddings: np.ndarray
    emotions: np.ndarray

    def __post_init__(self):
        self.embeddings = np.asarray(self.embeddings, np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) == 0:
            raise ValueError(
                f"PersonalIndex: embeddings must be a non-empty [n, dim] array, "
                f"got shape {self.embeddings.shape}"
            )
        self.emotions = _check_distributions("PersonalIndex: emotions", self.emotions)
        if len(self.emotions) != len(self.embeddings):
            raise ValueError(
                f"PersonalIndex: {len(self.embeddings)} embeddings but {len(self.emotions)} "
                "emotion rows; give one emotion distribution per example"
            )
        self.index = _faiss().IndexFlatIP(self.embeddings.shape[1])
        self.index.add(_normalise(self.embeddings))

    def __len__(self) -> int:
        return len(self.embeddings)

    def neighbours(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and indices of the k nearest personal examples: ([b, k], [b, k])."""
        queries = np.asarray(queries, np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"queries must be [batch, {self.embeddings.shape[1]}], got shape {queries.shape}"
            )
        return self.index.search(_normalise(queries), min(k, len(self)))

    def adjust(
        self,
        model_probs: np.ndarray,
        queries: np.ndarray,
        *,
        k: int = 5,
        blend: float = 0.5,
        temperature: float = 0.1,
        min_similarity: float | None = None,
    ) -> np.ndarray:
        """Blend the model's emotion distributions with the personal kNN estimate.

        model_probs: [batch, num_emotions]; queries: [batch, dim] sense embeddings.
        Neighbours with cosine similarity below ``min_similarity`` get no vote; a query with no
        voting neighbour keeps the model's prediction. Returns [batch, num_emotions].
        """
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        model_probs = _check_distributions("model_probs", model_probs)
        if model_probs.shape[1] != self.emotions.shape[1]:
            raise ValueError(
                f"model_probs has {model_probs.shape[1]} emotions, the index has "
                f"{self.emotions.shape[1]}"
            )
        sims, idx = self.neighbours(queries, k)
        logits = sims / temperature
        keep = np.ones_like(sims, bool) if min_similarity is None else sims >= min_similarity
        logits = np.where(keep, logits, -np.inf)
        any_vote = keep.any(axis=1, keepdims=True)
        logits = np.where(any_vote, logits, 0.0)
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        w = w / w.sum(axis=1, keepdims=True)
        personal = np.einsum("bk,bke->be", w, self.emotions[idx])
        beta = np.where(any_vote, blend, 0.0)
        return (1.0 - beta) * model_probs + beta * personal

    def save(self, directory: str) -> None:
        """Write the examples (npz) and the Faiss index to ``directory``."""
        os.makedirs(directory, exist_ok=True)
        np.savez(
            os.path.join(directory, "personal.npz"),
            embeddings=self.embeddings,
            emotions=self.emotions,
        )
        _faiss().write_index(self.index, os.path.join(directory, "personal.faiss"))
        with open(os.path.join(directory, "personal.json"), "w") as f:
            json.dump({"num_examples": len(self), "dim": int(self.embeddings.shape[1])}, f)

    @classmethod
    def load(cls, directory: str) -> PersonalIndex:
        path = os.path.join(directory, "personal.npz")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"no personal index at {path}; build one with `emojax adjust --build ...`"
            )
        data = np.load(path)
        return cls(data["embeddings"], data["emotions"])
