"""Small methods that exercise the Method interface v2 (configs name them "toy_methods:Class").

``QueueRegression``: linear regression with extra state outside the gradient (a step counter and
a FIFO queue of detached features, sharded over the data axes). ``FrozenTeacher``: a student
regressing onto a frozen random teacher, plus a frozen ("trainable=False") bias parameter.
``Classifier``: a linear classifier whose evaluator reports accuracy / weighted F1 / recall@K /
median rank over the whole split.
"""

from __future__ import annotations

import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from emojax import metrics
from emojax.models.base import Evaluator, Method

DIM = 6
QUEUE = 16


class ArraySource:
    """``n`` examples ``{"x": [DIM] float32, "y": [] float32, "label": [] int32}``."""

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, DIM)).astype(np.float32)
        self.w = np.random.default_rng(123).normal(size=(DIM,)).astype(np.float32)
        self.y = (self.x @ self.w).astype(np.float32)
        self.label = (self.x[:, 0] > 0).astype(np.int32) + (self.x[:, 1] > 0.5).astype(np.int32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if os.environ.get("TOY_SLOW_READS"):  # slow enough for a test to kill a run mid-way
            time.sleep(float(os.environ["TOY_SLOW_READS"]))
        return {"x": self.x[i], "y": self.y[i], "label": self.label[i]}


class Linear(nn.Module):
    features: int = 1

    @nn.compact
    def __call__(self, batch, train: bool = False):
        dense = nn.Dense(
            self.features,
            kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.1), ("embed", None)),
        )
        return dense(batch["x"])


def base_config(method: str, **data) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = method
    config.seed = 0
    config.model = ml_collections.ConfigDict({"features": 1})
    config.data = ml_collections.ConfigDict(
        {"global_batch_size": 8, "num_train": 64, "num_eval": 37, **data}
    )
    config.optimizer = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 0.05, "schedule": "constant"}
    )
    config.train = ml_collections.ConfigDict(
        {"num_steps": 6, "log_every": 1, "save_every": 2, "eval_every": 0, "keep_last": 10}
    )
    config.eval = ml_collections.ConfigDict({"split": "validation"})
    return config


class _Base(Method):
    def example_batch(self, batch_size):
        return {
            "x": jax.ShapeDtypeStruct((batch_size, DIM), jnp.float32),
            "y": jax.ShapeDtypeStruct((batch_size,), jnp.float32),
            "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        }

    def data_source(self, split):
        d = self.config.data
        return ArraySource(d.num_train if split == "train" else d.num_eval, split == "train")

    def build_model(self):
        return Linear(self.config.model.features)


class QueueRegression(_Base):
    """Regression; extra state {"count": [], "queue": [QUEUE, DIM], "pointer": []}."""

    def init_extra_state(self, rng):
        del rng
        return {
            "count": jnp.zeros((), jnp.int32),
            "pointer": jnp.zeros((), jnp.int32),
            "queue": nn.LogicallyPartitioned(jnp.zeros((QUEUE, DIM)), ("queue", None)),
        }

    def loss(self, model, variables, batch, rng, *, train):
        pred = model.apply({"params": variables["params"]}, batch)[:, 0]
        loss = jnp.mean((pred - batch["y"]) ** 2)
        # The queue takes part in the loss (a small pull towards the queued mean): so a resume
        # that lost the extra state would change the trajectory.
        queued = variables["extra"]["queue"].mean()
        loss = loss + 1e-3 * queued**2 * jnp.sum(variables["params"]["Dense_0"]["kernel"] ** 2)
        features = jax.lax.stop_gradient(batch["x"] * pred[:, None])
        return loss, ({"mse": loss}, {}, features)

    def update_extra_state(self, extra, outputs, *, step, rng):
        rows = outputs.shape[0]
        queue = jnp.roll(extra["queue"], -rows, axis=0).at[-rows:].set(outputs)
        return {
            "count": extra["count"] + 1,
            "pointer": (extra["pointer"] + rows) % QUEUE,
            "queue": queue,
        }


class Teacher(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1, use_bias=False)(jnp.tanh(nn.Dense(8)(x)))


class TeacherOnBatch(nn.Module):
    """The teacher's structure (same param names) on a batch: a run that trains a teacher."""

    @nn.compact
    def __call__(self, batch, train: bool = False):
        return Teacher(name="teacher")(batch["x"])


class TeacherFit(_Base):
    def build_model(self):
        return TeacherOnBatch()

    def loss(self, model, variables, batch, rng, *, train):
        pred = model.apply({"params": variables["params"]}, batch)[:, 0]
        loss = jnp.mean((pred - batch["y"]) ** 2)
        return loss, ({}, {})


class Student(nn.Module):
    @nn.compact
    def __call__(self, batch, train: bool = False):
        offset = self.param("offset", nn.initializers.constant(0.25), ())
        return nn.Dense(1)(batch["x"]) + offset


class FrozenTeacher(_Base):
    """The student fits a frozen teacher (from ``config.model.teacher_workdir`` if set, else a
    seeded random init); the ``offset`` parameter is not trainable."""

    def build_model(self):
        return Student()

    def init_frozen(self, rng, read_checkpoint):
        source = self.config.model.get("teacher_workdir", "")
        if source:
            return {"teacher": read_checkpoint(source, "params/teacher")}
        x = jnp.zeros((1, DIM))
        return {"teacher": Teacher().init(rng, x)["params"]}

    def trainable(self, params):
        return {k: jax.tree.map(lambda _, k=k: k != "offset", v) for k, v in params.items()}

    def loss(self, model, variables, batch, rng, *, train):
        target = Teacher().apply({"params": variables["frozen"]["teacher"]}, batch["x"])
        pred = model.apply({"params": variables["params"]}, batch)
        loss = jnp.mean((pred - target) ** 2)
        return loss, ({"mse": loss}, {})


class ClassifierEvaluator(Evaluator):
    name = "classify"

    def predict(self, model, variables, batch):
        logits = model.apply({"params": variables["params"]}, batch)
        return {"logits": logits, "label": batch["label"], "x": batch["x"]}

    def compute(self, outputs, reference=None):
        pred = outputs["logits"].argmax(-1)
        scores = outputs["x"] @ outputs["x"].T
        return {
            "accuracy": metrics.accuracy(outputs["label"], pred),
            "weighted_f1": metrics.f1_score(outputs["label"], pred, 3),
            "R@1": metrics.recall_at_k(scores, 1),
            "R@5": metrics.recall_at_k(scores, 5),
            "median_rank": metrics.median_rank(scores),
            "count": float(len(pred)),
        }


class Classifier(_Base):
    def build_model(self):
        return Linear(3)

    def loss(self, model, variables, batch, rng, *, train):
        logits = model.apply({"params": variables["params"]}, batch)
        labels = jax.nn.one_hot(batch["label"], 3)
        loss = -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits), -1))
        return loss, ({}, {})

    def evaluators(self, split):
        return [ClassifierEvaluator()]


class VariableLengthSource:
    """``n`` sequences of 1..7 vectors [DIM]; target: the sum of their first coordinates."""

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.items = [
            rng.normal(size=(int(rng.integers(1, 8)), DIM)).astype(np.float32) for _ in range(n)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        seq = self.items[i]
        return {"seq": seq, "y": np.float32(seq[:, 0].sum())}


BUCKET = 8


def pad_sequences(examples) -> dict:
    """The collate hook: variable-length ``seq`` padded to the bucket length, with a mask."""
    seq = np.zeros((len(examples), BUCKET, DIM), np.float32)
    mask = np.zeros((len(examples), BUCKET), np.float32)
    for row, example in enumerate(examples):
        n = len(example["seq"])
        seq[row, :n], mask[row, :n] = example["seq"], 1.0
    return {"seq": seq, "mask": mask, "y": np.stack([e["y"] for e in examples])}


class SumEvaluator(Evaluator):
    name = "sum"

    def predict(self, model, variables, batch):
        pred = model.apply({"params": variables["params"]}, batch)
        return {"error": jnp.abs(pred - batch["y"]), "length": batch["mask"].sum(-1)}

    def compute(self, outputs, reference=None):
        return {
            "mae": float(outputs["error"].mean()),
            "count": float(len(outputs["error"])),
            "tokens": float(outputs["length"].sum()),
        }


class MaskedSum(nn.Module):
    @nn.compact
    def __call__(self, batch, train: bool = False):
        return (nn.Dense(1)(batch["seq"])[..., 0] * batch["mask"]).sum(-1)


class Sequences(Method):
    """Variable-size examples batched by a collate hook into fixed buckets with masks."""

    def build_model(self):
        return MaskedSum()

    def example_batch(self, batch_size):
        return {
            "seq": jax.ShapeDtypeStruct((batch_size, BUCKET, DIM), jnp.float32),
            "mask": jax.ShapeDtypeStruct((batch_size, BUCKET), jnp.float32),
            "y": jax.ShapeDtypeStruct((batch_size,), jnp.float32),
        }

    def data_source(self, split):
        d = self.config.data
        return VariableLengthSource(
            d.num_train if split == "train" else d.num_eval, split == "train"
        )

    def collate(self, examples):
        return pad_sequences(examples)

    def loss(self, model, variables, batch, rng, *, train):
        pred = model.apply({"params": variables["params"]}, batch)
        loss = jnp.mean((pred - batch["y"]) ** 2)
        return loss, ({}, {})

    def evaluators(self, split):
        return [SumEvaluator()]
