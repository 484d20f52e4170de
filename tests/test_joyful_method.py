"""The ``joyful`` Method: every config loads and its loss runs (all terms finite), the whole-split
evaluator against scikit-learn, the best-dev selection, data errors, and one short training run
on the built-in dialogues (slow)."""

import glob
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from emojax.models.joyful.method import ErcEvaluator, Joyful, task_loss
from emojax.models.joyful.report import select_best_dev
from emojax.train import load_config
from emojax.train.config import validate_config

CONFIGS = sorted(
    glob.glob(
        os.path.join(os.path.dirname(__file__), "..", "emojax", "configs", "joyful", "[a-z]*.py")
    )
)
DIMS = {"audio": 3, "text": 5, "visual": 4}


def _tiny(path):
    c = load_config(path)
    with c.unlocked():
        c.model.modalities = tuple(m for m in c.model.modalities if m in DIMS)
        c.data.dims = {m: DIMS[m] for m in c.model.modalities}
        c.data.max_len = 6
        c.model.fusion.update(local_dim=4, hidden=6, code_dim=4, global_heads=1, chunk=0)
        c.model.context.update(heads=1, mlp_dim=8, out_dim=6)
        c.model.context.layers = min(c.model.context.layers, 1)
        c.model.graph.update(window_past=2, window_future=2, heads=2, n_speakers=3)
        c.model.classifier_hidden = 5
    return validate_config(c)


def _dialogues(c, lengths=(3, 6, 1, 4)):
    rng = np.random.default_rng(0)
    k = c.model.num_classes
    return [
        {
            **{m: rng.normal(size=(n, d)).astype(np.float32) for m, d in c.data.dims.items()},
            "speaker": rng.integers(0, 3, n),
            "label": rng.integers(0, 2, (n, k)) if c.model.multilabel else rng.integers(0, k, n),
        }
        for n in lengths
    ]


NAMES = [os.path.basename(p) for p in CONFIGS]
# the configs whose code paths differ (code / paper fusion with both view kinds / no graph);
# the others only change loss weights or the fusion kind and are built in the test below
COMPILED = ("default.py", "paper.py", "no_context.py")
# paper.py's step also runs (sharded and unsharded) in the slow tests/test_joyful_sharding.py
FAST = [pytest.param(n, marks=pytest.mark.slow) if n == "paper.py" else n for n in COMPILED]


def test_every_config_loads_and_builds():
    assert set(COMPILED) <= set(NAMES) and {"cogmen.py", "no_contrast.py"} <= set(NAMES)
    for path in CONFIGS:
        c = _tiny(path)
        method = Joyful(c)
        method.build_model()
        assert method.example_batch(2)["edge_src"].shape[0] == 2


@pytest.mark.parametrize("name", FAST)
def test_config_trains_one_step_with_finite_terms(name):
    c = _tiny(CONFIGS[NAMES.index(name)])
    method = Joyful(c)
    batch = method.collate(_dialogues(c))
    spec = method.example_batch(4)
    assert {k: v.shape for k, v in spec.items()} == {k: v.shape for k, v in batch.items()}
    model = method.build_model()

    @jax.jit
    def run(batch):
        variables = method.init_variables(model, jax.random.key(0), batch)

        def f(params):
            v = {**variables, "params": params}
            loss, (metrics, _) = method.loss(model, v, batch, jax.random.key(1), train=True)
            return loss, metrics

        return jax.value_and_grad(f, has_aux=True)(variables["params"])

    (loss, metrics), grads = run(batch)
    assert np.isfinite(float(loss))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    m = c.model
    assert ("loss_contrast" in metrics) == (m.contrast.weight > 0)
    if m.fusion.kind != "concat" and m.w_fusion > 0:
        assert float(metrics["loss_fusion"]) > 0
    if m.contrast.weight > 0:  # the contrast reaches the RGCN weights
        root = nn.unbox(grads)["gnn"]["rgcn_conv"]["root"]
        assert float(jnp.abs(root).sum()) > 0


def test_task_loss_weighted_nll_and_bce():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 4)), jnp.float32)
    labels = jnp.asarray([[0, 3, 1], [2, 0, 0]])
    mask = jnp.asarray([[True, True, False], [True, False, False]])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    logp = np.asarray(jax.nn.log_softmax(logits))
    rows = [(0, 0), (0, 1), (1, 0)]
    nll = [-logp[b, t, labels[b, t]] * w[labels[b, t]] for b, t in rows]
    want = sum(nll) / sum(w[labels[b, t]] for b, t in rows)
    got = task_loss(logits, labels, mask, multilabel=False, class_weights=tuple(w))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    y = (np.asarray(logits) > 0.3).astype(np.float32)
    x = np.asarray(logits)
    bce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    want = sum(bce[b, t].sum() for b, t in rows) / 3
    got = task_loss(logits, jnp.asarray(y), mask, multilabel=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_evaluator_counts_every_real_utterance_like_sklearn():
    rng = np.random.default_rng(2)
    mask = rng.random((9, 7)) < 0.6
    mask[-2:] = False  # padding dialogues of the last batch
    label, pred = rng.integers(0, 6, (9, 7)), rng.integers(0, 6, (9, 7))
    outputs = {"pred": pred, "label": label, "mask": mask}
    ev = ErcEvaluator(6, multilabel=False, test=True)
    assert ev.reference_split == "test"
    metrics = ev.compute(outputs, reference=outputs)
    y, p = label[mask], pred[mask]
    assert metrics["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted"))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert metrics["test_weighted_f1"] == metrics["weighted_f1"]
    assert metrics["num_utterances"] == mask.sum()
    yl, pl = rng.integers(0, 2, (9, 7, 3)), rng.integers(0, 2, (9, 7, 3))
    multi = ErcEvaluator(3, multilabel=True).compute({"pred": pl, "label": yl, "mask": mask})
    want = np.mean([f1_score(yl[mask][:, c], pl[mask][:, c], average="weighted") for c in range(3)])
    assert multi["weighted_f1"] == pytest.approx(want)


def test_best_dev_selection_reports_test_of_that_evaluation():
    rows = [
        {"step": 50, "loss": 1.0},
        {"step": 100, "eval/weighted_f1": 0.5, "eval/test_weighted_f1": 0.9, "eval/accuracy": 0.5},
        {
            "step": 200,
            "eval/weighted_f1": 0.7,
            "eval/test_weighted_f1": 0.6,
            "eval/accuracy": 0.6,
            "eval/test_accuracy": 0.61,
        },
        {"step": 300, "eval/weighted_f1": 0.7, "eval/test_weighted_f1": 0.8},
    ]
    best = select_best_dev(rows)
    assert best["best_dev_step"] == 200  # the first of equal dev scores
    assert best["test_at_best_dev_weighted_f1"] == 0.6
    assert best["test_at_best_dev_accuracy"] == 0.61
    assert best["best_dev_weighted_f1"] == 0.7
    assert select_best_dev([{"step": 1, "loss": 2.0}]) == {}


def test_config_errors_name_the_key():
    c = _tiny(CONFIGS[0])
    with c.unlocked():
        c.model.contrast.views = ("mask_rewire", "katz")
    with pytest.raises(ValueError, match="model.contrast.views entry 'katz'"):
        Joyful(c)
    c = _tiny(CONFIGS[0])
    with c.unlocked():
        c.model.modalities = ("audio", "face")
    with pytest.raises(ValueError, match=r"\['face'\] have no width in data.dims"):
        Joyful(c)
    c = _tiny(CONFIGS[0])
    with c.unlocked():
        c.data.source = "avec"
    with pytest.raises(ValueError, match="config.data.source='avec'"):
        Joyful(c).data_source("train")


def test_builtin_dialogues_generation_rules():
    from emojax.data import dialogues as D

    rng = np.random.default_rng(3)
    pools = {
        "all": np.arange(100),
        "neutral": np.arange(50),
        "by_class": [np.arange(50 + 8 * c, 58 + 8 * c) for c in range(6)],
    }
    for _ in range(20):
        d = D.generate_dialogue(rng, pools, min_len=4, max_len=9, max_speakers=3)
        n = len(d["label"])
        assert 4 <= n <= 9 and d["speaker"].max() < 3
        for i in range(n):
            if d["revealing"][i]:  # the cue word carries the speaker's emotion
                assert d["emotion_word"][i] in pools["by_class"][d["label"][i]]
            else:
                assert d["emotion_word"][i] == -1 and set(d["words"][i]) <= set(pools["neutral"])
        # between two utterances of a speaker the emotion only changes on a revealing one
        for s in set(d["speaker"].tolist()):
            idx = np.flatnonzero(d["speaker"] == s)
            for a, b in zip(idx[:-1], idx[1:], strict=True):
                if d["label"][a] != d["label"][b]:
                    assert d["revealing"][b]


@pytest.mark.slow
def test_short_training_on_builtin_dialogues_learns(tmp_path):
    from emojax.models.joyful.report import quickstart_report
    from emojax.train import train

    c = load_config(CONFIGS[NAMES.index("default.py")])
    with c.unlocked():
        c.data.update(num_train=60, num_validation=12, num_test=12)
        c.train.update(num_steps=40, eval_every=20, save_every=20, log_every=20)
    result = train(c, tmp_path)
    assert result["eval/num_examples"] == 12
    extra, _ = quickstart_report(c, str(tmp_path), str(tmp_path), {})
    assert extra["best_dev_step"] in (20, 40)
    assert 0 <= extra["test_at_best_dev_weighted_f1"] <= 1
    assert result["loss_task"] < np.log(6)  # below chance level after 40 steps
