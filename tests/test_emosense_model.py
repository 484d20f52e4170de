"""EmoSense model, Method losses, inversion and evaluation metrics on a tiny config."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.models.emosense import evaluation as ev
from emojax.models.emosense import model as esm
from emojax.models.emosense.compose import NUM_SENSES, learned_weights
from emojax.models.emosense.invert import invert, target_distribution
from emojax.models.emosense.method import EmoSense
from emojax.train.config import load_config

# One tiny model is compiled for init, forward, two losses and eval (about 30 s on a quiet
# 2-core machine); the pure-numpy tests at the end are fast.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_default_config():
    return load_config(os.path.join(ROOT, "configs", "emosense", "default.py"))


def tiny_config(head="entmax_bisect"):
    config = load_default_config()
    m = config.model
    m.sense_dim = m.embed_dim = 16
    vit = dict(
        m.image_vit,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=16,
    )
    m.image_vit = dict(vit, num_channels=3)
    m.face_vit = dict(vit, num_channels=1)
    m.audio = dict(
        m.audio, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    m.head_normalizer = head
    return config


def random_batch(method, batch_size=8, seed=0):
    rng = np.random.default_rng(seed)
    batch = {}
    for key, spec in method.example_batch(batch_size).items():
        if jnp.issubdtype(spec.dtype, jnp.integer):
            high = {"label": 8, "word_ids": 50}.get(key, 2)
            batch[key] = rng.integers(0, high, size=spec.shape).astype(spec.dtype)
        else:
            batch[key] = rng.normal(size=spec.shape).astype(spec.dtype)
    batch["image"] = rng.integers(0, 255, size=(batch_size, 32, 32, 3)).astype(np.uint8)
    batch["face"] = rng.integers(0, 255, size=(batch_size, 32, 32, 1)).astype(np.uint8)
    emotion = rng.random((batch_size, 8)) * (rng.random((batch_size, 8)) < 0.4)
    emotion[:, 0] += 1e-3
    batch["emotion"] = (emotion / emotion.sum(1, keepdims=True)).astype(np.float32)
    batch["emotion_multi_hot"] = (batch["emotion"] > 0).astype(np.int32)
    return {k: jnp.asarray(v) for k, v in batch.items()}


@pytest.fixture(scope="module")
def shared():
    """One tiny model, initialised once; the entmax and softmax methods share its params."""
    method = EmoSense(tiny_config())
    model = method.build_model()
    batch = random_batch(method)
    variables = jax.jit(lambda r, b: method.init_variables(model, r, b))(jax.random.key(0), batch)
    outputs = jax.jit(lambda v, b: model.apply(v, b))(variables, batch)
    return model, variables, batch, outputs


@pytest.fixture(scope="module", params=["entmax_bisect", "softmax"])
def setup(request, shared):
    model, variables, batch, outputs = shared
    method = EmoSense(tiny_config(request.param))

    def loss_fn(v):
        return method.loss(model, v, batch, jax.random.key(1), train=True)

    (loss, (metrics, _)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables)
    return method, model, variables, batch, outputs, loss, metrics, grads


@pytest.mark.slow
def test_loss_is_finite_and_every_parameter_gets_a_gradient(setup):
    method, _, _, _, _, loss, metrics, grads = setup
    assert np.isfinite(float(loss))
    for key in ("loss_senses_emotion", "loss_emotion_fy", "loss_identifiers", "loss_views"):
        assert np.isfinite(float(metrics[key])), key
    total = sum(
        float(method.config.model[w]) * float(metrics[k])
        for w, k in [
            ("w_fy", "loss_emotion_fy"),
            ("w_identifiers", "loss_identifiers"),
            ("w_views", "loss_views"),
        ]
    ) + float(metrics["loss_senses_emotion"])
    np.testing.assert_allclose(float(loss), total, rtol=1e-5)
    flat = jax.tree_util.tree_flatten_with_path(grads["params"])[0]
    zero = [jax.tree_util.keystr(p) for p, g in flat if not np.any(np.asarray(g) != 0)]
    if method.config.model.head_normalizer == "softmax":
        # the softmax head never uses its alpha
        zero = [p for p in zero if "raw_head_alpha" not in p]
    assert zero == [], f"parameters without gradient: {zero}"


@pytest.mark.slow
def test_learnable_alphas_start_at_init_and_stay_in_range(setup):
    _, _, variables, _, out, _, metrics, _ = setup
    np.testing.assert_allclose(float(metrics["view_alpha"]), 1.5, atol=1e-5)
    assert 1.0 < float(out["head_alpha"]) < 2.0
    np.testing.assert_allclose(learned_weights(variables["params"]["compose"]), 1.0, atol=1e-4)


@pytest.mark.slow
def test_entmax_head_is_sparse_and_softmax_head_is_dense(setup):
    method, _, _, _, out, *_ = setup
    # scale the logits so that the difference between the mappings is visible
    probs = esm.normalize_logits(
        out["emotion_logits"] * 20, method.config.model.head_normalizer, out["head_alpha"]
    )
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    zeros = int(jnp.sum(probs == 0))
    if method.config.model.head_normalizer == "softmax":
        assert zeros == 0
    else:
        assert zeros > 0


@pytest.mark.slow
def test_evaluator_predict_and_compute(setup):
    method, model, variables, batch, *_ = setup
    (evaluator,) = method.evaluators("validation")
    assert evaluator.reference_split == "train" and evaluator.reference_limit == 4000
    outputs = jax.jit(lambda v, b: evaluator.predict(model, v, b))(variables, batch)
    outputs = jax.tree.map(np.asarray, outputs)
    assert all(v.shape[0] == 8 for v in outputs.values())
    metrics = evaluator.compute(outputs, reference=outputs)
    assert all(np.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["head_r1"] <= metrics["head_r5"] <= 1.0
    assert 0.0 <= metrics["senses_emotion_r1"] <= metrics["senses_emotion_r5"] <= 1.0
    natural = "threshold" if method.config.model.head_normalizer == "softmax" else "support"
    assert metrics["macro_f1"] == metrics[f"macro_f1_{natural}"]
    assert metrics["mean_set_size"] == metrics[f"mean_set_size_{natural}"]
    with pytest.raises(ValueError, match="train split"):
        evaluator.compute(outputs)


def test_bad_config_values_are_rejected():
    config = tiny_config()
    config.model.head_normalizer = "sigmoid"
    with pytest.raises(ValueError, match="model.head_normalizer"):
        EmoSense(config)
    config = tiny_config()
    config.model.text_tower = "bag_of_words"
    with pytest.raises(ValueError, match="model.text_tower"):
        EmoSense(config)
    config = tiny_config()
    config.model.w_fy = -1.0
    with pytest.raises(ValueError, match="model.w_fy"):
        EmoSense(config)


@pytest.mark.slow
def test_inversion_reaches_a_reachable_target(setup):
    method, model, variables, *_ = setup
    normalizer = method.config.model.head_normalizer
    alpha = float(model.apply(variables, method=esm.EmoSenseModel.head_alpha))
    from_senses = jax.jit(
        lambda s, w: model.apply(variables, s[None], w, method=esm.EmoSenseModel.from_senses)[1][0]
    )
    probs = lambda logits: esm.normalize_logits(logits, normalizer, alpha)
    loss = lambda logits, q: esm.emotion_loss(logits[None], q[None], normalizer, alpha)[0]
    rng = np.random.default_rng(3)
    vocab = rng.normal(size=(40, 16)).astype(np.float32)
    vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
    target = np.asarray(probs(from_senses(jnp.asarray(vocab[:5]), jnp.array([2.0, 0.5, 1, 1, 3]))))
    words = [f"w{i}" for i in range(40)]
    start = np.asarray(probs(from_senses(jnp.asarray(vocab[10:15]), jnp.ones(5))))
    result = invert(
        from_senses,
        probs,
        loss,
        target,
        vocab,
        words,
        init_senses=vocab[10:15],
        steps=150,
        learning_rate=0.05,
    )
    assert result.losses[-1] < result.losses[0]
    assert np.abs(result.predicted - target).sum() < 0.5 * np.abs(start - target).sum()
    assert result.weights.shape == (NUM_SENSES,) and np.all(result.weights > 0)
    assert len(result.identifiers) == NUM_SENSES and all(len(i) == 3 for i in result.identifiers)
    assert "sight" in result.summary()


def test_target_distribution_parsing():
    np.testing.assert_allclose(target_distribution("joy"), np.eye(8)[4])
    q = target_distribution("joy:2,trust:1")
    np.testing.assert_allclose(q[[4, 7]], [2 / 3, 1 / 3], atol=1e-6)
    with pytest.raises(ValueError, match="unknown emotion 'happiness'"):
        target_distribution("happiness")
    with pytest.raises(ValueError, match="shape"):
        target_distribution([1.0, 2.0])
    with pytest.raises(ValueError, match="positive sum"):
        target_distribution(np.zeros(8))


def test_recall_and_macro_f1_against_hand_computed_values():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    labels = np.array([0, 1, 2])
    assert ev.recall_at(scores, labels, 1) == pytest.approx(1 / 3)
    assert ev.recall_at(scores, labels, 2) == pytest.approx(1.0)  # ties count as hits
    pred = np.array([[1, 0], [1, 1], [0, 0]], bool)
    true = np.array([[1, 0], [0, 1], [0, 1]], bool)
    # class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 1, fp 0, fn 1 -> 2/3
    assert ev.macro_f1(pred, true) == pytest.approx(2 / 3)
    probs = np.array([[0.5, 0.5, 0.0], [0.3, 0.3, 0.4]])
    np.testing.assert_array_equal(ev.predicted_sets(probs, "entmax_bisect"), probs > 0)
    np.testing.assert_array_equal(ev.predicted_sets(probs, "softmax"), probs > 1 / 3)
    np.testing.assert_array_equal(ev.support_sets(probs), probs > 0)
    np.testing.assert_array_equal(ev.threshold_sets(probs), probs > 1 / 3)


def test_person_file_parsing_and_errors(tmp_path):
    from emojax.models.emosense.cli import read_person

    path = tmp_path / "me.jsonl"
    path.write_text(
        '{"words": ["sun", "bell", "warm", "rose", "honey"], "emotion": "joy"}\n\n'
        '{"words": ["rain", "thunder", "cold", "smoke", "bitter"], "emotion": "fear:1,sadness:1"}\n'
    )
    rows = read_person(str(path))
    assert [w[0] for w, _ in rows] == ["sun", "rain"]
    np.testing.assert_allclose(rows[1][1][[3, 5]], [0.5, 0.5])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"words": ["a"]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected"):
        read_person(str(bad))
    with pytest.raises(FileNotFoundError, match="person file"):
        read_person(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no scenes"):
        read_person(str(empty))


def test_zero_shot_identifiers_ranks_by_cosine():
    vocab = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    signals = np.array([[2.0, 0.1], [0.1, -3.0]], np.float32)
    np.testing.assert_array_equal(ev.zero_shot_identifiers(signals, vocab, k=2), [[0, 1], [0, 2]])


@pytest.mark.parametrize("name", ["default", "minilm_fsdp"])
def test_configs_validate_and_describe_their_batches(name):
    from emojax.train.config import validate_config

    config = validate_config(load_config(os.path.join(ROOT, "configs", "emosense", f"{name}.py")))
    batch = EmoSense(config).example_batch(4)
    text_keys = {"word_features"} if name == "default" else {"word_tokens", "word_token_mask"}
    assert text_keys <= set(batch)
    assert batch["image"].shape == (4, 32, 32, 3) and batch["audio"].shape == (4, 4000)
