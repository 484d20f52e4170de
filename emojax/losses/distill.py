"""Knowledge-distillation objectives.

* :func:`hinton_kl_loss` (Hinton et al. 2015): ``T^2 * KL(softmax(t / T) || softmax(s / T))``,
  batch mean; the ``T^2`` keeps gradient magnitudes comparable across temperatures.
* :func:`anp_distill_loss` (seed 002): ``L = (alpha L_sp + L_r) / (1 + alpha)`` with
  ``L_sp = BCE(P_RN, P_SB)`` against the ANP teacher's probabilities and ``L_r = BCE(P_RN, y)``
  against the labels, ``P_RN = sigmoid(student logits)``; alpha = 1 in the paper.
* :func:`distill_loss` picks one of them by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite, check_positive


def hinton_kl_loss(
    student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float = 4.0
) -> jax.Array:
    """T^2-scaled KL from the softened teacher to the softened student. logits: [batch, classes]."""
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(
            "student_logits and teacher_logits must both be [batch, classes]; got "
            f"{student_logits.shape} and {teacher_logits.shape}"
        )
    check_positive("temperature", temperature)
    check_finite(student_logits=student_logits, teacher_logits=teacher_logits)
    t = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature
    s = student_logits.astype(jnp.float32) / temperature
    log_p_t = jax.nn.log_softmax(t, axis=-1)
    log_p_s = jax.nn.log_softmax(s, axis=-1)
    kl = jnp.sum(jnp.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return temperature**2 * jnp.mean(kl)


def soft_bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1] (stable form)."""
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    return jnp.mean(jax.nn.softplus(logits) - targets * logits)


def anp_distill_loss(
    student_logits: jax.Array,
    teacher_probs: jax.Array,
    labels: jax.Array,
    *,
    alpha: float = 1.0,
) -> jax.Array:
    """Seed-002 objective ``(alpha * BCE(s, P_SB) + BCE(s, y)) / (1 + alpha)``; scalar float32.

    Args:
      student_logits: [batch] or [batch, classes] logits of the student (P_RN = sigmoid).
      teacher_probs: same shape, teacher probabilities P_SB in [0, 1] (constants).
      labels: same shape, hard labels y in {0, 1} (int or float).
      alpha: weight of the soft-target term (>= 0).
    """
    shape = student_logits.shape
    for name, a in (("teacher_probs", teacher_probs), ("labels", labels)):
        if a.shape != shape:
            raise ValueError(f"{name} shape {a.shape} != student_logits shape {shape}")
    check_positive("alpha", alpha, allow_zero=True)
    check_finite(student_logits=student_logits, teacher_probs=teacher_probs, labels=labels)
    teacher = jax.lax.stop_gradient(teacher_probs)
    l_sp = soft_bce_with_logits(student_logits, teacher)
    l_r = soft_bce_with_logits(student_logits, labels)
    return (alpha * l_sp + l_r) / (1.0 + alpha)


def distill_loss(
    student_logits: jax.Array,
    teacher: jax.Array,
    labels: jax.Array | None = None,
    *,
    method: str = "hinton",
    temperature: float = 4.0,
    alpha: float = 1.0,
) -> jax.Array:
    """Distillation by name: ``method="hinton"`` (teacher = logits) or ``"anp"`` (teacher =
    probabilities, ``labels`` required). See :func:`hinton_kl_loss`, :func:`anp_distill_loss`."""
    if method == "hinton":
        return hinton_kl_loss(student_logits, teacher, temperature=temperature)
    if method == "anp":
        if labels is None:
            raise ValueError('method="anp" needs labels (the hard targets of L_r)')
        return anp_distill_loss(student_logits, teacher, labels, alpha=alpha)
    raise ValueError(f'method must be "hinton" or "anp", got {method!r}')
