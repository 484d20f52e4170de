"""`emojax invert` and `emojax adjust`: steer and personalise a trained EmoSense workdir.

    emojax invert --workdir DIR --emotion joy            # or "joy:2,trust:1"
    emojax adjust --workdir DIR --person me.jsonl --words sun,bell,warm,rose,honey

Both work in identifier space: a scene is five words (sight, sound, touch, smell, taste), each
mapped by the model's identifier projection of the frozen text tower, composed on the complex
plane and scored by the emotion head. ``--person`` is a JSON-lines file of that person's own
scenes: ``{"words": [5 words], "emotion": "joy" | "joy:1,fear:1" | [8 numbers]}`` per line.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from emojax.models.emosense.compose import NUM_SENSES, SENSES

FLAGS = flags.FLAGS


def _define_flags(command: str) -> None:
    flags.DEFINE_string("workdir", None, "a trained EmoSense workdir", required=True)
    if command == "invert":
        flags.DEFINE_string(
            "emotion", None, "target: name, 'name:w,...' or 8 numbers", required=True
        )
        flags.DEFINE_integer("steps", 300, "Adam steps")
        flags.DEFINE_float("learning_rate", 0.05, "Adam learning rate")
        flags.DEFINE_integer("top_k", 3, "nearest identifiers shown per sense")
        flags.DEFINE_integer("seed", 0, "start from these random identifiers")
    else:
        flags.DEFINE_string("person", None, "JSON lines of the person's scenes", required=True)
        flags.DEFINE_string("words", None, "query scene: 5 comma-separated words", required=True)
        flags.DEFINE_integer("k", 5, "neighbours")
        flags.DEFINE_float("blend", 0.5, "weight of the personal estimate")


class IdentifierScorer:
    """The model restricted to identifier scenes: words -> sense vectors -> emotion."""

    def __init__(self, workdir: str):
        import jax
        import ml_collections

        from emojax.models.emosense.evaluation import restore_variables
        from emojax.models.emosense.model import EmoSenseModel, emotion_loss, normalize_logits

        path = os.path.join(workdir, "config.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: is {workdir} a trained EmoSense workdir?")
        with open(path) as f:
            config = ml_collections.ConfigDict(json.load(f))
        if config.method != "emosense":
            raise ValueError(f"{workdir} holds a {config.method!r} run, not emosense")
        if config.model.text_tower != "frozen":
            raise ValueError("invert/adjust need a frozen-text-tower run (model.text_tower=frozen)")
        self.method, self.model, self.variables = restore_variables(config, workdir)
        self.normalizer = config.model.head_normalizer
        self.words = self.method.vocabulary
        self.index = {w: i for i, w in enumerate(self.words)}
        apply = lambda fn, *args: self.model.apply(self.variables, *args, method=fn)
        self.vocab_vectors = np.asarray(
            jax.jit(lambda t: apply(EmoSenseModel.identifier_vectors, t))(
                self.method.identifier_table()
            )
        )
        # a Python float: a concrete array closed over by a jitted function trips ops checks
        self.alpha = float(apply(EmoSenseModel.head_alpha))
        self.from_senses = jax.jit(lambda s, w: apply(EmoSenseModel.from_senses, s, w))
        self.probs = lambda logits: normalize_logits(logits, self.normalizer, self.alpha)
        self.loss = lambda logits, q: emotion_loss(
            logits[None], q[None], self.normalizer, self.alpha
        )[0]
        self.learned_weights = None

    def logits(self, senses, weights):
        """senses [5, d], weights [5] -> logits [8]."""
        return self.from_senses(senses[None], weights)[1][0]

    def scene(self, words: list[str]) -> np.ndarray:
        if len(words) != NUM_SENSES:
            raise ValueError(f"a scene has {NUM_SENSES} words ({', '.join(SENSES)}), got {words}")
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ValueError(f"words not in the identifier vocabulary: {unknown}")
        return self.vocab_vectors[[self.index[w] for w in words]]

    def predict(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(emotion distribution [8], composed sense embedding [E]) of a word scene."""
        composed, logits = self.from_senses(self.scene(words)[None], None)
        return np.asarray(self.probs(logits))[0], np.asarray(composed)[0]


def run_invert(workdir: str, emotion: str, **kwargs) -> dict:
    from emojax.models.emosense.invert import invert, target_distribution

    target = target_distribution(
        [float(x) for x in emotion.split()] if emotion[:1].isdigit() else emotion
    )
    scorer = IdentifierScorer(workdir)
    result = invert(
        scorer.logits,
        scorer.probs,
        scorer.loss,
        target,
        scorer.vocab_vectors,
        scorer.words,
        **kwargs,
    )
    print(result.summary())
    payload = {
        "target": result.target.tolist(),
        "weights": dict(zip(SENSES, result.weights.tolist(), strict=True)),
        "identifiers": dict(zip(SENSES, result.identifiers, strict=True)),
        "predicted": result.predicted.tolist(),
        "snapped_predicted": result.snapped_predicted.tolist(),
        "final_loss": float(result.losses[-1]),
    }
    name = "".join(c if c.isalnum() else "_" for c in emotion)[:40]
    with open(os.path.join(workdir, f"invert_{name}.json"), "w") as f:
        json.dump(payload, f, indent=2)
    return payload


def read_person(path: str) -> list[tuple[list[str], np.ndarray]]:
    from emojax.models.emosense.invert import target_distribution

    if not os.path.exists(path):
        raise FileNotFoundError(f"person file {path} not found")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows.append((list(item["words"]), target_distribution(item["emotion"])))
            except (KeyError, json.JSONDecodeError, TypeError) as err:
                raise ValueError(
                    f'{path}:{n}: expected {{"words": [5 words], "emotion": ...}}, got '
                    f"{line.strip()!r} ({err})"
                ) from None
    if not rows:
        raise ValueError(f"{path} has no scenes")
    return rows


def run_adjust(workdir: str, person: str, words: list[str], *, k: int, blend: float) -> dict:
    from emojax.data.lexicon import EMOTIONS
    from emojax.models.emosense.adjust import PersonalIndex

    scorer = IdentifierScorer(workdir)
    rows = read_person(person)
    embeddings = np.stack([scorer.predict(w)[1] for w, _ in rows])
    index = PersonalIndex(embeddings, np.stack([q for _, q in rows]))
    probs, query = scorer.predict(words)
    adjusted = index.adjust(probs[None], query[None], k=k, blend=blend)[0]
    fmt = lambda p: ", ".join(f"{EMOTIONS[i]} {p[i]:.2f}" for i in np.argsort(-p) if p[i] > 0.005)
    print(f"scene:    {dict(zip(SENSES, words, strict=True))}")
    print(f"model:    {fmt(probs)}")
    print(f"adjusted: {fmt(adjusted)}   ({len(index)} personal scenes, k={k}, blend={blend})")
    return {"model": probs.tolist(), "adjusted": adjusted.tolist()}


def main(command: str, argv: list[str]) -> None:
    _define_flags(command)

    def _main(args):
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments {args[1:]}")
        if command == "invert":
            run_invert(
                FLAGS.workdir,
                FLAGS.emotion,
                steps=FLAGS.steps,
                learning_rate=FLAGS.learning_rate,
                top_k=FLAGS.top_k,
                seed=FLAGS.seed,
            )
        else:
            run_adjust(
                FLAGS.workdir,
                FLAGS.person,
                [w.strip() for w in FLAGS.words.split(",")],
                k=FLAGS.k,
                blend=FLAGS.blend,
            )

    app.run(_main, argv=argv)
