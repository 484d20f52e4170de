"""Inverting an emotion into sense values (seed 000, sections 7.3 and 1: "steering" emotion).

Given a target emotion distribution ``q`` (or an emotion name), find per-sense weights ``w`` and
sense vectors ``u_k`` such that the model's emotion head on the composition
``sum_k w_k zeta^k u_k`` predicts ``q``; then snap each ``u_k`` to its nearest identifiers (words)
of that sense's vocabulary and re-score the snapped scene. Gradient-based (Adam) on

    L(w, u) = FY_alpha(head(compose(normalise(u), w)), q)

i.e. the same entmax Fenchel-Young loss the head is trained with (its gradient is p - q).
The model enters only through ``emotion_logits_fn(senses [5, d], weights [5]) -> [num_emotions]``
so this file knows nothing about Flax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from emojax.data.lexicon import EMOTIONS
from emojax.models.emosense.compose import NUM_SENSES, SENSES

LogitsFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
LossFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def target_distribution(emotion: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """An emotion name (one of EMOTIONS), comma-separated ``name:weight`` pairs, or a vector -> [8].

    ``"joy"`` -> one-hot; ``"joy:2,trust:1"`` -> (2/3 joy, 1/3 trust); a vector is normalised.
    """
    if isinstance(emotion, str):
        q = np.zeros(len(EMOTIONS), np.float32)
        for part in emotion.split(","):
            name, _, weight = part.strip().partition(":")
            if name not in EMOTIONS:
                raise ValueError(f"unknown emotion {name!r}; choose from {', '.join(EMOTIONS)}")
            try:
                q[EMOTIONS.index(name)] += float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"bad weight {weight!r} for emotion {name!r}") from None
    else:
        q = np.asarray(emotion, np.float32)
        if q.shape != (len(EMOTIONS),):
            raise ValueError(
                f"target distribution must have shape [{len(EMOTIONS)}], got {q.shape}"
            )
    if np.any(q < 0) or q.sum() <= 0:
        raise ValueError(f"target emotion weights must be >= 0 with a positive sum, got {q}")
    return q / q.sum()


def _unit(x: jnp.ndarray) -> jnp.ndarray:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class Inversion:
    """Result: weights [5], optimised sense vectors [5, d], nearest identifiers per sense
    (``identifiers[k]`` = [(word, cosine)] best first), the optimised prediction and the
    prediction of the snapped scene (identifier vectors with the optimised weights), loss curve."""

    target: np.ndarray
    weights: np.ndarray
    senses: np.ndarray
    identifiers: list[list[tuple[str, float]]]
    predicted: np.ndarray
    snapped_predicted: np.ndarray
    losses: np.ndarray

    def summary(self) -> str:
        fmt = lambda p: ", ".join(
            f"{EMOTIONS[i]} {p[i]:.2f}" for i in np.argsort(-p) if p[i] > 0.005
        )
        lines = [f"target:    {fmt(self.target)}"]
        for k, sense in enumerate(SENSES):
            words = ", ".join(f"{w} ({c:.2f})" for w, c in self.identifiers[k])
            lines.append(f"{sense:<6} w={self.weights[k]:.3f}  nearest: {words}")
        lines.append(f"optimised: {fmt(self.predicted)}")
        lines.append(f"snapped:   {fmt(self.snapped_predicted)}")
        return "\n".join(lines)


def invert(
    emotion_logits_fn: LogitsFn,
    probs_fn: Callable[[jnp.ndarray], jnp.ndarray],
    loss_fn: LossFn,
    target: np.ndarray,
    vocab_vectors: np.ndarray,
    vocab_words: Sequence[str],
    *,
    init_senses: np.ndarray | None = None,
    optimise_senses: bool = True,
    steps: int = 300,
    learning_rate: float = 0.05,
    top_k: int = 3,
    seed: int = 0,
) -> Inversion:
    """Optimise sense weights (and sense vectors) so that the head predicts ``target``.

    emotion_logits_fn(senses [5, d], weights [5]) -> logits [E]; probs_fn(logits) -> [E];
    loss_fn(logits, target [E]) -> scalar. vocab_vectors: [V, d] identifier vectors in the sense
    space (one vocabulary shared by the senses, as the identifiers are words), vocab_words: [V].
    init_senses: [5, d] start (default: five random vocabulary vectors); with
    ``optimise_senses=False`` only the weights move (steering a given scene).
    """
    vocab_vectors = np.asarray(vocab_vectors, np.float32)
    if vocab_vectors.ndim != 2 or len(vocab_vectors) != len(vocab_words):
        raise ValueError(
            f"vocab_vectors must be [V, d] with V = len(vocab_words) = {len(vocab_words)}, "
            f"got shape {vocab_vectors.shape}"
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    if init_senses is None:
        init_senses = vocab_vectors[rng.choice(len(vocab_vectors), NUM_SENSES, replace=False)]
    init_senses = np.asarray(init_senses, np.float32)
    if init_senses.shape != (NUM_SENSES, vocab_vectors.shape[1]):
        raise ValueError(
            f"init_senses must be [{NUM_SENSES}, {vocab_vectors.shape[1]}], got {init_senses.shape}"
        )
    q = jnp.asarray(target, jnp.float32)

    def objective(variables):
        senses = _unit(variables["senses"])
        weights = jax.nn.softplus(variables["raw_weights"])
        return loss_fn(emotion_logits_fn(senses, weights), q)

    variables = {"senses": jnp.asarray(init_senses), "raw_weights": jnp.full((NUM_SENSES,), 0.5413)}
    mask = {"senses": optimise_senses, "raw_weights": True}
    tx = optax.masked(optax.adam(learning_rate), mask)
    opt_state = tx.init(variables)

    @jax.jit
    def step(variables, opt_state):
        loss, grads = jax.value_and_grad(objective)(variables)
        updates, opt_state = tx.update(grads, opt_state, variables)
        updates = jax.tree.map(lambda u, m: u if m else jnp.zeros_like(u), updates, mask)
        return optax.apply_updates(variables, updates), opt_state, loss

    losses = []
    for _ in range(steps):
        variables, opt_state, loss = step(variables, opt_state)
        losses.append(float(loss))
    senses = np.asarray(_unit(variables["senses"]))
    weights = np.asarray(jax.nn.softplus(variables["raw_weights"]))
    predicted = np.asarray(probs_fn(emotion_logits_fn(jnp.asarray(senses), jnp.asarray(weights))))

    vocab_unit = vocab_vectors / np.maximum(
        np.linalg.norm(vocab_vectors, axis=1, keepdims=True), 1e-12
    )
    cosines = senses @ vocab_unit.T  # [5, V]
    identifiers, snapped = [], []
    for k in range(NUM_SENSES):
        order = np.argsort(-cosines[k])[:top_k]
        identifiers.append([(vocab_words[i], float(cosines[k, i])) for i in order])
        snapped.append(vocab_unit[order[0]])
    snapped_pred = np.asarray(
        probs_fn(emotion_logits_fn(jnp.asarray(np.stack(snapped)), jnp.asarray(weights)))
    )
    return Inversion(
        target=np.asarray(q),
        weights=weights,
        senses=senses,
        identifiers=identifiers,
        predicted=predicted,
        snapped_predicted=snapped_pred,
        losses=np.asarray(losses),
    )
