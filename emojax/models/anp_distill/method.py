"""The ``anp_distill`` Method: the region-text teacher (stage 1) and the distilled ResNet
student (stage 2) of seed 002.

``config.model.stage = "teacher"``: the trained parameters are ``params/teacher``
(:class:`RegionTextEncoder`); every valid region is one example labelled with its image's label
(cross-entropy, mean over the valid regions of the batch), as in the paper (no saliency during
training). Evaluation combines the regions of each image into P_SB (saliency-weighted) and
scores it against the image labels: the paper's "MR SentiBank" row.

``config.model.stage = "student"``: the trained parameters are ``params/student``
(ResNet + dense). With ``model.alpha > 0`` the teacher is a frozen variable read from
``model.teacher_workdir`` (``params/teacher`` of the stage-1 run) and the loss is the seed's
``L = (alpha L_sp + L_r) / (1 + alpha)`` (``emojax.losses.distill_loss(method="anp")``) with
P_SB computed in the step from the batch's region texts, boxes and images (Itti-Koch saliency,
jitted). ``alpha = 0`` trains the ResNet on the labels alone (the "ResNet" row).

Binary task (``num_classes = 2``): the student has one logit, P_RN = sigmoid, targets P_SB's
positive probability and y in {0, 1}, as in the paper. Multi-class (``num_classes = 6``,
EmotionROI's emotions): the same formula one-vs-rest per class, against P_SB's distribution and
the one-hot label; the prediction is the argmax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from emojax import metrics
from emojax.losses import distill_loss
from emojax.losses.distill import soft_bce_with_logits
from emojax.models.anp_distill import data as anp_data
from emojax.models.anp_distill.model import (
    WEIGHTINGS,
    ANPDistillModel,
    RegionTextEncoder,
    Student,
    combine_regions,
    region_weights,
)
from emojax.models.base import Evaluator, Method

STAGES = ("teacher", "student")
SOURCES = ("builtin", "emotion_roi", "twitter_borth")


def _model_variables(variables) -> dict:
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}


def classification_metrics(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy and F1 (binary: of the positive class, the paper's F; else macro), plus
    macro / weighted F1. labels, pred: [N] int."""
    confusion = metrics.confusion_matrix(labels, pred, num_classes)
    per_class = metrics.per_class_f1(confusion)
    out = {
        "accuracy": metrics.accuracy(labels, pred),
        "macro_f1": metrics.f1_score(labels, pred, num_classes, average="macro"),
        "weighted_f1": metrics.f1_score(labels, pred, num_classes, average="weighted"),
        "count": float(len(labels)),
    }
    out["f1"] = float(per_class[1]) if num_classes == 2 else out["macro_f1"]
    return out


class SentimentEvaluator(Evaluator):
    """Whole-split accuracy / F1 of the stage's model and, when a teacher is present, of P_SB."""

    name = "sentiment"

    def __init__(self, method: ANPDistill):
        self.method = method

    def predict(self, model, variables, batch):
        m = self.method
        out = {"label": batch["label"]}
        if m.stage == "teacher":
            logits = model.apply(_model_variables(variables), batch, train=False)
            out["teacher_probs"] = m.p_sb(jax.nn.softmax(logits.astype(jnp.float32)), batch)
        else:
            logits = model.apply(_model_variables(variables), batch, train=False)
            out["student_probs"] = m.student_probs(logits)
            if "frozen" in variables:
                out["teacher_probs"] = m.teacher_p_sb(variables["frozen"]["teacher"], batch)
        return out

    def compute(self, outputs, reference=None):
        k = self.method.num_classes
        labels = outputs["label"].astype(np.int64)
        result = {}
        main = "teacher_probs" if self.method.stage == "teacher" else "student_probs"
        for key in ("teacher_probs", "student_probs"):
            if key not in outputs:
                continue
            scores = classification_metrics(labels, outputs[key].argmax(-1), k)
            prefix = "" if key == main else key.split("_")[0] + "_"
            result.update({prefix + name: value for name, value in scores.items()})
        return result


class ANPDistill(Method):
    """Method ``anp_distill`` (configs/anp_distill/*.py)."""

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        if m.stage not in STAGES:
            raise ValueError(f"config.model.stage={m.stage!r}; choose one of {STAGES}")
        if config.data.source not in SOURCES:
            raise ValueError(f"config.data.source={config.data.source!r}; choose one of {SOURCES}")
        self.stage = m.stage
        self.num_classes = int(m.num_classes)
        anp_data.class_names(self.num_classes)  # validates
        self.alpha = float(m.alpha)
        if self.alpha < 0:
            raise ValueError(f"config.model.alpha={self.alpha} must be >= 0")
        if self.stage == "student" and self.alpha > 0 and not m.teacher_workdir:
            raise ValueError(
                "config.model.alpha > 0 distils a teacher: set config.model.teacher_workdir to the "
                "stage-1 run (configs/anp_distill/teacher.py), or alpha=0 for the ResNet alone"
            )
        if m.weighting not in WEIGHTINGS:
            raise ValueError(f"config.model.weighting={m.weighting!r}; choose one of {WEIGHTINGS}")
        s = m.saliency
        self.saliency_kwargs = dict(
            weighting=m.weighting,
            centers=tuple(s.centers),
            deltas=tuple(s.deltas),
            map_level=int(s.map_level),
        )

    # -- model -----------------------------------------------------------------------------------

    def teacher_module(self) -> RegionTextEncoder:
        t = self.config.model.teacher
        return RegionTextEncoder(
            vocab_size=self.config.data.vocab_size,
            num_classes=self.num_classes,
            embed_dim=t.embed_dim,
            num_layers=t.num_layers,
            num_heads=t.num_heads,
            mlp_dim=t.mlp_dim,
            dropout_rate=t.dropout_rate,
            max_length=anp_data.TOKENS,
        )

    def build_model(self):
        s = self.config.model.student
        student = Student(
            depth=s.depth,
            width=s.width,
            outputs=1 if self.num_classes == 2 else self.num_classes,
            dtype=jnp.dtype(self.config.train.get("compute_dtype", "float32")),
        )
        return ANPDistillModel(self.stage, self.teacher_module(), student)

    def example_batch(self, batch_size):
        d = self.config.data
        size, regions = d.image_size, d.max_regions
        return {
            "image": jax.ShapeDtypeStruct((batch_size, size, size, 3), jnp.uint8),
            "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
            "boxes": jax.ShapeDtypeStruct((batch_size, regions, 4), jnp.float32),
            "region_mask": jax.ShapeDtypeStruct((batch_size, regions), jnp.float32),
            "tokens": jax.ShapeDtypeStruct((batch_size, regions, anp_data.TOKENS), jnp.int32),
        }

    def init_variables(self, model, rng, batch):
        params_rng, dropout_rng = jax.random.split(rng)
        variables = model.init({"params": params_rng, "dropout": dropout_rng}, batch, train=False)
        path = self.config.model.student.get("pretrained", "")
        if self.stage == "student" and path:
            variables = load_pretrained_resnet(variables, path)
        return variables

    def init_frozen(self, rng, read_checkpoint):
        if self.stage != "student" or not self.config.model.teacher_workdir:
            return {}
        return {"teacher": read_checkpoint(self.config.model.teacher_workdir, "params/teacher")}

    # -- teacher outputs -------------------------------------------------------------------------

    def p_sb(self, region_probs: jax.Array, batch) -> jax.Array:
        """P_SB ``[B, C]`` from per-region probabilities ``[B, R, C]`` and the batch's images."""
        weights = region_weights(
            batch["image"], batch["boxes"], batch["region_mask"], **self.saliency_kwargs
        )
        return combine_regions(region_probs, weights, batch["region_mask"])

    def teacher_p_sb(self, teacher_params, batch) -> jax.Array:
        logits = self.teacher_module().apply({"params": teacher_params}, batch["tokens"])
        return jax.lax.stop_gradient(self.p_sb(jax.nn.softmax(logits.astype(jnp.float32)), batch))

    def student_probs(self, logits: jax.Array) -> jax.Array:
        """``[B, C]`` class probabilities of the student (binary: (1 - P_RN, P_RN))."""
        logits = logits.astype(jnp.float32)
        if self.num_classes == 2:
            p = jax.nn.sigmoid(logits[:, 0])
            return jnp.stack([1 - p, p], axis=-1)
        return jax.nn.sigmoid(logits)

    # -- objective -------------------------------------------------------------------------------

    def loss(self, model, variables, batch, rng, *, train):
        rngs = self.rngs(rng)
        if self.stage == "teacher":
            logits = model.apply(_model_variables(variables), batch, train=train, rngs=rngs)
            labels = jnp.broadcast_to(batch["label"][:, None], logits.shape[:2])
            ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
            mask = batch["region_mask"].astype(jnp.float32)
            count = jnp.maximum(jnp.sum(mask), 1.0)
            loss = jnp.sum(ce * mask) / count
            correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
            return loss, ({"region_accuracy": jnp.sum(correct * mask) / count}, {})
        logits, collections = model.apply(
            _model_variables(variables), batch, train=train, rngs=rngs, mutable=["batch_stats"]
        )
        labels = batch["label"]
        if self.num_classes == 2:
            student, hard = logits[:, 0], labels.astype(jnp.float32)
        else:
            student, hard = logits, jax.nn.one_hot(labels, self.num_classes)
        terms = {}
        if self.alpha > 0:
            p_sb = self.teacher_p_sb(variables["frozen"]["teacher"], batch)
            soft = p_sb[:, 1] if self.num_classes == 2 else p_sb
            loss = distill_loss(student, soft, hard, method="anp", alpha=self.alpha)
            terms["loss_sp"] = soft_bce_with_logits(student, soft)
        else:
            loss = distill_loss(student, hard, hard, method="anp", alpha=0.0)
        pred = jnp.argmax(self.student_probs(logits), -1)
        terms["accuracy"] = jnp.mean((pred == labels).astype(jnp.float32))
        return loss, (terms, collections)

    def evaluators(self, split):
        return [SentimentEvaluator(self)]

    # -- data ------------------------------------------------------------------------------------

    def data_source(self, split):
        d = self.config.data
        if d.source == "builtin":
            return anp_data.BuiltinRegions(d, split)
        from emojax.models.anp_distill import regions

        return regions.joined_source(d, split, self.num_classes)


def load_pretrained_resnet(variables, path: str):
    """``variables`` with ``student/resnet`` replaced by a file written by ``emojax convert
    --model=resnet`` (``params/...`` and ``batch_stats/...``); errors name missing weights."""
    from emojax.convert import load_flax_params

    loaded = load_flax_params(path)
    out = dict(variables)
    for collection in ("params", "batch_stats"):
        flat = traverse_util.flatten_dict(dict(variables[collection]))
        source = traverse_util.flatten_dict(loaded.get(collection, {}))
        problems = []
        for key, leaf in flat.items():
            if key[:2] != ("student", "resnet"):
                continue
            value = source.get(key[2:])
            target = leaf.value if hasattr(leaf, "value") else leaf
            if value is None or tuple(value.shape) != tuple(target.shape):
                got = None if value is None else tuple(value.shape)
                problems.append(f"{'/'.join(key[2:])}: {got} in the file, {target.shape} here")
                continue
            value = jnp.asarray(value, target.dtype)
            flat[key] = leaf.replace_boxed(value) if hasattr(leaf, "replace_boxed") else value
        if problems:
            raise ValueError(
                f"model.student.pretrained={path}: {len(problems)} weight(s) do not fit "
                f"(depth/width of the converted ResNet?):\n  " + "\n  ".join(problems[:20])
            )
        out[collection] = traverse_util.unflatten_dict(flat)
    return out
