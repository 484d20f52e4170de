"""anp_distill: configs, built-in data, regions JSONL validation and join, twitter_borth labels,
and (slow) the teacher -> distilled-student chain with the frozen teacher and the seed's loss."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.data import twitter_borth
from emojax.models.anp_distill import data as anp_data
from emojax.models.anp_distill import regions
from emojax.models.anp_distill.method import ANPDistill, classification_metrics
from emojax.train import load_config

CONFIGS = ("teacher", "student", "distill", "emotionroi_resnet101")


def _config(name="teacher", **data):
    config = load_config(f"emojax/configs/anp_distill/{name}.py")
    with config.unlocked():
        for key, value in data.items():
            config.data[key] = value
    return config


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_load_and_describe_their_batch(name):
    config = _config(name)
    method = ANPDistill(config)
    batch = method.example_batch(2)
    assert batch["tokens"].shape == (2, config.data.max_regions, anp_data.TOKENS)
    assert method.build_model().stage == config.model.stage
    if name == "distill":
        with config.unlocked():
            config.stages_root = "/somewhere"
        assert config.model.teacher_workdir == "/somewhere/teacher"


def test_bad_config_values_are_named():
    config = _config("distill")
    with config.unlocked():
        config.model.teacher_workdir = ""
    with pytest.raises(ValueError, match="teacher_workdir"):
        ANPDistill(config)
    with config.unlocked():
        config.model.stage = "pupil"
    with pytest.raises(ValueError, match="model.stage"):
        ANPDistill(config)


def test_builtin_data_is_deterministic_with_disjoint_splits_and_real_adjectives():
    d = _config().data
    train, test = anp_data.BuiltinRegions(d, "train"), anp_data.BuiltinRegions(d, "test")
    a, b = train[3], train[3]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(train[0]["image"], test[0]["image"])
    assert a["image"].shape == (d.image_size, d.image_size, 3) and a["image"].dtype == np.uint8
    valid = a["region_mask"] > 0
    assert 2 <= valid.sum() <= d.max_regions and np.all(a["tokens"][:, -1] == anp_data.END)
    assert np.all(a["tokens"][~valid, :-1] == anp_data.PAD)
    boxes = a["boxes"][valid]
    assert np.all((boxes >= 0) & (boxes <= 1)) and np.all(boxes[:, 2:] > boxes[:, :2])
    from emojax.data.lexicon import load_lexicon

    lexicon = load_lexicon()
    negative, positive = anp_data.adjective_pools(2, d.adjectives_per_class, d.data_seed)
    assert not set(negative) & set(positive)
    assert all(lexicon.sentiments[lexicon.word_id(w), 0] == 1 for w in positive)
    assert all(lexicon.sentiments[lexicon.word_id(w), 1] == 1 for w in negative)
    labels = np.array([train[i]["label"] for i in range(200)])
    assert 0.2 < labels.mean() < 0.6


def _line(**overrides):
    obj = {
        "image": "joy/1.jpg",
        "width": 100,
        "height": 50,
        "regions": [
            {
                "box": [10, 5, 60, 45],
                "label": "dog",
                "anps": [["cute_dog", 1.2], ["happy dog", 1.9]],
            },
            {"box": [0, 0, 100, 50], "label": "sky", "anps": [["dark_sky", 0.5]]},
        ],
    }
    obj.update(overrides)
    return json.dumps(obj)


def test_regions_file_parses_and_joins(tmp_path):
    path = tmp_path / "regions.jsonl"
    path.write_text(_line() + "\n\n" + _line(image="fear/2.jpg", regions=[]) + "\n")
    table = regions.read_regions(str(path))
    dog = table["joy/1.jpg"][0]
    assert dog.adjectives == ("happy", "cute") and dog.box == (0.1, 0.1, 0.9, 0.6)
    arrays = regions.region_arrays(table["joy/1.jpg"], 3, 4096)
    assert arrays["region_mask"].tolist() == [1, 1, 0]  # the largest box (sky) first
    np.testing.assert_array_equal(
        arrays["tokens"][1], anp_data.region_tokens(["happy", "cute"], "dog", 4096)
    )
    import io

    from PIL import Image

    def encoded(colour):
        buffer = io.BytesIO()
        Image.new("RGB", (100, 50), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    base = [
        {"image": encoded("red"), "filename": b"joy/1.jpg", "sentiment": 1},
        {"image": encoded("blue"), "filename": "fear/2.jpg", "sentiment": 0},
    ]
    d = _config(regions_file=str(path), image_size=16, max_regions=3).data
    source = regions.JoinedSource(base, [0, 1], table, d, "sentiment")
    first, second = source[0], source[1]
    assert first["image"].shape == (16, 16, 3) and first["image"][0, 0, 0] == 255
    assert int(first["label"]) == 1 and second["region_mask"].sum() == 0
    missing = regions.JoinedSource(base, [0], {}, d, "sentiment")
    with pytest.raises(KeyError, match="no line for image 'joy/1.jpg'"):
        missing[0]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps([1]), "expected a JSON object"),
        (_line(width=0), "width and height must be > 0"),
        (_line(regions=[{"box": [10, 5, 200, 45], "label": "dog", "anps": [["a_b", 1]]}]), "box"),
        (_line(regions=[{"box": [1, 1, 2, 2], "label": "", "anps": [["a_b", 1]]}]), "label"),
        (_line(regions=[{"box": [1, 1, 2, 2], "label": "x", "anps": []}]), "anps must be"),
        (_line(regions=[{"box": [1, 1, 2, 2], "label": "x", "anps": [["a_b", "hi"]]}]), "score"),
    ],
)
def test_regions_file_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    path.write_text(_line(image="ok.jpg") + "\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"{path}:2: .*{message}"):
        regions.read_regions(str(path))


def test_regions_file_duplicate_image_and_missing_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(_line() + "\n" + _line() + "\n")
    with pytest.raises(ValueError, match=r"r.jsonl:2: image 'joy/1.jpg' already given on line 1"):
        regions.read_regions(str(path))
    with pytest.raises(FileNotFoundError, match="regions_file"):
        regions.read_regions(str(tmp_path / "none.jsonl"))


def test_twitter_borth_labels_and_stratified_split(tmp_path):
    path = tmp_path / "labels.txt"
    rows = [f"img{i}.jpg {'positive' if i % 4 else 0}" for i in range(40)]
    path.write_text("# file label\n" + "\n".join(rows) + "\n")
    entries = twitter_borth.read_labels(str(path))
    splits = twitter_borth.split_entries(entries, split_seed=0)
    assert len(splits["test"]) == 8 and sum(y for _, y in splits["test"]) == 6
    assert not {f for f, _ in splits["train"]} & {f for f, _ in splits["test"]}
    path.write_text("a.jpg 1\nb.jpg maybe\n")
    with pytest.raises(ValueError, match=r"labels.txt:2: 'b.jpg maybe'"):
        twitter_borth.read_labels(str(path))


def test_classification_metrics_binary_f1_is_the_positive_class():
    labels, pred = np.array([1, 1, 0, 0, 0]), np.array([1, 0, 0, 0, 1])
    out = classification_metrics(labels, pred, 2)
    assert out["accuracy"] == pytest.approx(0.6) and out["f1"] == pytest.approx(0.5)


@pytest.mark.slow
def test_teacher_then_distilled_student_chain(tmp_path):
    """Stage 1 trains params/teacher; stage 2 reads them as frozen variables (saved once in the
    student's workdir), and its loss is the seed's (alpha L_sp + L_r) / (1 + alpha)."""
    from emojax.losses import distill_loss
    from emojax.train import evaluate, train
    from emojax.train.init_from import read_checkpoint

    def small(name):
        config = _config(name, num_train=64, num_validation=16, num_test=16, image_size=32)
        with config.unlocked():
            config.stages_root = str(tmp_path)
            config.data.global_batch_size = 16
            config.model.student.width = 4
            config.model.weighting = "uniform"  # saliency has its own tests; keeps compiles short
            config.train.update(num_steps=3, eval_every=3, save_every=3, log_every=1)
        return config

    train(small("teacher"), tmp_path / "teacher")
    config = small("distill")
    train(config, tmp_path / "distill")
    teacher = read_checkpoint(tmp_path / "teacher", "params/teacher")
    frozen = read_checkpoint(tmp_path / "distill", "params")  # the student's own params
    assert "teacher" not in frozen and "student" in frozen
    assert (tmp_path / "distill" / "frozen" / "axes.json").is_file()
    metrics = evaluate(config, tmp_path / "distill")
    assert {"eval/accuracy", "eval/teacher_accuracy", "eval/f1"} <= set(metrics)

    # the loss of a batch == the seed's formula on the frozen teacher's P_SB
    method = ANPDistill(config)
    model = method.build_model()
    batch = {
        k: jnp.stack([jnp.asarray(method.data_source("test")[i][k]) for i in range(4)])
        for k in method.example_batch(1)
    }
    from emojax.parallel import strip_boxes

    variables = jax.jit(lambda b: method.init_variables(model, jax.random.key(0), b))(batch)
    variables = {**strip_boxes(variables), "frozen": {"teacher": teacher}}

    @jax.jit
    def outputs(v, b):
        loss, _ = method.loss(model, v, b, jax.random.key(1), train=False)
        logits = model.apply({k: v[k] for k in ("params", "batch_stats")}, b)
        return loss, logits, method.teacher_p_sb(v["frozen"]["teacher"], b)

    loss, logits, p_sb = outputs(variables, batch)
    want = distill_loss(
        logits[:, 0], p_sb[:, 1], batch["label"].astype(jnp.float32), method="anp", alpha=1.0
    )
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
    assert np.all((np.asarray(p_sb) >= 0) & (np.asarray(p_sb) <= 1))


def test_table_markdown_rows_mean_and_std():
    from emojax.models.anp_distill.table import table_markdown

    run = lambda a, f: {"accuracy": a, "f1": f}  # noqa: E731
    results = {
        0: {"teacher": run(0.7, 0.6), "alpha_0.0": run(0.6, 0.5), "alpha_1.0": run(0.8, 0.7)},
        1: {"teacher": run(0.8, 0.6), "alpha_0.0": run(0.6, 0.5), "alpha_1.0": run(0.9, 0.7)},
    }
    text = table_markdown(results)
    assert "| teacher (MR SentiBank, P_SB) | 75.00 ± 5.00 | 0.600 ± 0.000 | 2 |" in text
    assert "| ResNet + distillation (alpha 1) | 85.00 ± 5.00 |" in text
    assert "| 1 | 85.00 ± 5.00 |" in text and "| 0 | 60.00 ± 0.00 |" in text


def test_six_class_losses_follow_the_seed_formula_one_vs_rest():
    """EmotionROI's six emotions: per-region CE for the teacher; for the student the seed's
    formula per class against P_SB's distribution and the one-hot label."""
    from emojax.losses import distill_loss
    from emojax.parallel import strip_boxes

    def method_of(name):
        config = _config(name, num_train=8, num_test=8, image_size=32)
        with config.unlocked():
            config.model.update(num_classes=6, weighting="uniform")
            config.model.student.width = 4
            config.data.adjectives_per_class = 30
        return ANPDistill(config)

    teacher = method_of("teacher")
    source = teacher.data_source("test")
    batch = {k: jnp.stack([jnp.asarray(source[i][k]) for i in range(4)]) for k in source[0]}
    assert int(batch["label"].max()) < 6
    t_model = teacher.build_model()
    # jitted: one compile each instead of one per eager op
    t_vars = strip_boxes(
        jax.jit(lambda b: teacher.init_variables(t_model, jax.random.key(0), b))(batch)
    )
    t_loss, (t_metrics, _) = jax.jit(
        lambda v, b: teacher.loss(t_model, v, b, jax.random.key(1), train=False)
    )(t_vars, batch)
    assert np.isfinite(float(t_loss)) and 0 <= float(t_metrics["region_accuracy"]) <= 1

    student = method_of("distill")
    model = student.build_model()
    variables = strip_boxes(
        jax.jit(lambda b: student.init_variables(model, jax.random.key(2), b))(batch)
    )
    variables = {**variables, "frozen": {"teacher": t_vars["params"]["teacher"]}}

    @jax.jit  # one compile instead of op-by-op ResNet dispatch
    def outputs(v, b):
        loss, _ = student.loss(model, v, b, jax.random.key(3), train=False)
        logits = model.apply({k: v[k] for k in ("params", "batch_stats")}, b)
        return loss, logits, student.teacher_p_sb(v["frozen"]["teacher"], b)

    loss, logits, p_sb = outputs(variables, batch)
    assert logits.shape == (4, 6) and p_sb.shape == (4, 6)
    np.testing.assert_allclose(np.asarray(p_sb).sum(-1), 1.0, rtol=1e-5)
    want = distill_loss(logits, p_sb, jax.nn.one_hot(batch["label"], 6), method="anp", alpha=1.0)
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)


def test_pretrained_resnet_file_from_emojax_convert_loads_into_the_student(tmp_path):
    """``model.student.pretrained``: the file ``emojax convert --model=resnet`` writes."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_anp_distill import TorchStudent
    from emojax.convert import convert_resnet, save_flax_params
    from emojax.nn.resnet import resnet_config
    from emojax.parallel import strip_boxes

    torch.manual_seed(0)
    ref = TorchStudent(18, 4)
    _, converted = convert_resnet(ref.resnet.state_dict(), resnet_config(18, 4))
    save_flax_params(converted, tmp_path / "r18.safetensors")
    config = _config("student", image_size=32)
    with config.unlocked():
        config.model.student.update(width=4, pretrained=str(tmp_path / "r18.safetensors"))
    method = ANPDistill(config)
    model = method.build_model()
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), method.example_batch(2))
    init = jax.jit(lambda b: method.init_variables(model, jax.random.key(0), b))
    variables = strip_boxes(init(batch))
    for collection in ("params", "batch_stats"):
        got = jax.tree.leaves(variables[collection]["student"]["resnet"])
        want = jax.tree.leaves(converted[collection])
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with config.unlocked():
        config.model.student.width = 8  # another ResNet: every weight mis-shaped (shapes only)
    method = ANPDistill(config)
    model = method.build_model()
    with pytest.raises(ValueError, match=r"weight\(s\) do not fit"):
        jax.eval_shape(lambda b: method.init_variables(model, jax.random.key(0), b), batch)
