"""The ``mcn`` Method end to end on a tiny emojax_senses copy: training with every loss term, the
k-means extra state in the checkpoint, the whole-split retrieval evaluator against a NumPy
reference, the study variants, every config file, and the errors a user can cause.

The MiniLM word-vector table (8 s to compute, covered by the convert tests) is replaced by a
fixed random table of the same shape; everything else is the real path.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax.train import evaluate, load_config, restore, train, validate_config
from emojax.train.checkpoint import read_state

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs" / "mcn").glob("*.py"))
CPU_CONFIGS = ("default", "pairs_vt_va", "pairs_va_all", "multispace", "no_cluster", "no_recon")
SMALL = {"num_train": 64, "num_validation": 24, "num_test": 24}
STEPS = 4
# the tests that run the trainer are marked slow (about a minute each on 2 shared cores)


def _fake_word_table(path=None):
    from emojax.data import senses
    from emojax.models.mcn.data import WORD_DIM

    rng = np.random.default_rng(0)
    return rng.standard_normal((len(senses.vocabulary()), WORD_DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One small emojax_senses build (about a second) and the fake word table for the module."""
    from emojax.data import senses
    from emojax.models.mcn import method

    root = str(tmp_path_factory.mktemp("mcn_senses"))
    senses.get_builder(root, seed=0, workers=0, **SMALL)
    patch = pytest.MonkeyPatch()
    patch.setattr(method, "_word_table", _fake_word_table)
    yield root
    patch.undo()


def small_config(data_dir, name="default", **overrides):
    """``configs/mcn/<name>.py`` at test size (dotted ``overrides`` on top)."""
    config = load_config(str(ROOT / "configs" / "mcn" / f"{name}.py"))
    m = config.model
    m.embed_dim, m.video_dim, m.recon_hidden = 16, 32, 16
    m.audio_widths, m.audio_depths = (8, 8, 8, 8, 8), (1, 1, 1, 1)
    m.cluster.num_clusters, m.cluster.queue_size, m.cluster.refit_every = 4, 16, 2
    d = config.data
    d.data_dir = data_dir
    d.num_train, d.num_validation, d.num_test = (
        SMALL["num_train"],
        SMALL["num_validation"],
        SMALL["num_test"],
    )
    d.global_batch_size = 8
    config.mesh = {"data": 8, "fsdp": 1, "tensor": 1}
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.save_every = STEPS, 1, STEPS, STEPS
    config.optimizer.warmup_steps = 1
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def _method(config):
    from emojax.models.mcn.method import MCN

    return MCN(validate_config(config))


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    config = small_config(data_dir, **{"train.save_every": 2})
    workdir = str(tmp_path_factory.mktemp("mcn_run") / "run")
    result = train(config, workdir)
    return config, workdir, result


# -- training ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_loss_term_is_finite(trained):
    import json

    _, workdir, result = trained
    rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    train_rows = [r for r in rows if any(k.endswith("loss_mms") for k in r)]
    assert len(train_rows) == STEPS
    for term in ("loss_mms", "loss_cluster", "loss_recon"):
        values = [v for r in train_rows for k, v in r.items() if k.endswith(term)]
        assert len(values) == STEPS, (term, train_rows[0].keys())
        assert np.all(np.isfinite(values)), (term, values)
    assert result["step"] == STEPS


@pytest.mark.slow
def test_kmeans_state_advanced_in_the_checkpoint(trained):
    _, workdir, _ = trained
    state = read_state(f"{workdir}/checkpoints", STEPS)
    kmeans = state["extra"]["kmeans"]

    def leaf(name):  # KMeansState may be saved as a dict or a list of its fields
        if isinstance(kmeans, dict):
            value = kmeans[name]
        else:
            from emojax.losses.cluster import KMeansState

            value = kmeans[KMeansState._fields.index(name)]
        return np.asarray(value.get("value", value) if isinstance(value, dict) else value)

    assert int(leaf("step")) == STEPS
    assert int(leaf("queue_count")) == 16  # 4 steps x 8 rows, capped at queue_size
    centroids = leaf("centroids")
    assert centroids.shape == (4, 16)
    assert np.all(np.linalg.norm(centroids, axis=1) > 0)
    assert np.all(np.isfinite(leaf("queue")))


@pytest.mark.slow
def test_resume_from_the_middle_is_bitwise(trained, tmp_path):
    """A run cut after step 2 (its step-4 checkpoint gone, as after a SIGKILL) and resumed ends
    bitwise equal to the uninterrupted run: parameters, optimizer and the k-means state."""
    import shutil

    config, workdir, _ = trained
    cut = tmp_path / "cut"
    shutil.copytree(workdir, cut)
    shutil.rmtree(cut / "checkpoints" / str(STEPS))
    train(config, str(cut))
    want, got = read_state(f"{workdir}/checkpoints", STEPS), read_state(cut / "checkpoints", STEPS)
    for part in ("params", "opt_state", "extra"):
        flat_want = jax.tree_util.tree_leaves_with_path(want[part])
        flat_got = dict(jax.tree_util.tree_leaves_with_path(got[part]))
        assert len(flat_want) == len(flat_got) > 0, part
        for path, value in flat_want:
            np.testing.assert_array_equal(np.asarray(flat_got[path]), np.asarray(value), str(path))


def _test_embeddings(config, workdir):
    """model.apply of the restored run on every test clip, through the method's own data path."""
    restored = restore(config, workdir)
    method = restored.method
    source = method.data_source("test")
    (transform,) = method.preprocess("test")
    clips = [transform.map(source[i]) for i in range(len(source))]
    batch = {k: np.stack([c[k] for c in clips]) for k in ("video", "audio", "text", "text_mask")}
    variables = jax.device_get(
        {k: v for k, v in restored.variables().items() if k in ("params", "batch_stats")}
    )
    out = jax.jit(lambda v, b: restored.model.apply(v, b, train=False))(variables, batch)
    return {m: np.asarray(out[m], np.float64) for m in ("video", "audio", "text")}


@pytest.mark.slow
def test_evaluator_counts_the_whole_test_split_and_matches_numpy(trained):
    config, workdir, _ = trained
    test = config.copy_and_resolve_references()
    test.eval.split, test.eval.num_batches = "test", 0
    metrics = evaluate(test, workdir)
    assert metrics["eval/num_examples"] == SMALL["num_test"]
    emb = _test_embeddings(config, workdir)
    for prefix, items in (("t2va_", emb["video"] + emb["audio"]), ("t2v_", emb["video"])):
        scores = emb["text"] @ items.T
        ranks = 1 + np.sum(scores > np.diag(scores)[:, None], axis=1)  # no ties in float64
        for k in (1, 5, 10):
            assert metrics[f"eval/{prefix}R@{k}"] == pytest.approx(np.mean(ranks <= k)), k
        assert metrics[f"eval/{prefix}median_rank"] == pytest.approx(np.median(ranks), abs=0.5)


# -- the study's variants ------------------------------------------------------------------------


@pytest.mark.slow  # one MCN loss+gradient compile each
@pytest.mark.parametrize(
    "name, terms, absent",
    [
        ("multispace", ("loss_mms", "loss_mms_video_audio", "loss_cluster"), ()),
        ("no_cluster", ("loss_mms", "loss_recon"), ("loss_cluster",)),
        ("no_recon", ("loss_mms", "loss_cluster"), ("loss_recon",)),
    ],
)
def test_study_variant_loss_and_gradients(name, terms, absent):
    """The study configs that change the objective's structure, at tiny size: their terms,
    finite gradients for every parameter, k-means extra state exactly when clustering is on
    (the pair sets differ only in the pair list: test_pair_sets_weight_the_pairs; the trainer
    path is the ``trained`` fixture's)."""
    method = _method(small_config("", name))
    model = method.build_model()
    batch = _good_batch(method, b=8)
    variables = method.init_variables(model, jax.random.key(0), batch)
    extra = jax.tree.map(
        lambda x: x.value if hasattr(x, "value") else x,
        method.init_extra_state(jax.random.key(0)),
        is_leaf=lambda x: hasattr(x, "value"),
    )
    assert ("kmeans" in extra) == (name != "no_cluster")

    def loss_fn(params):
        loss, aux = method.loss(
            model,
            {**variables, "params": params, "extra": extra},
            batch,
            jax.random.key(1),
            train=True,
        )
        return loss, aux[0]

    (loss, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
    assert np.isfinite(float(loss))
    for term in terms:
        assert np.isfinite(float(metrics[term])), (term, metrics)
    for term in absent:
        assert term not in metrics, (term, metrics)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_pair_sets_weight_the_pairs():
    from emojax.models.mcn.method import parse_pairs

    assert parse_pairs("vt_va") == [("video", "text"), ("audio", "video")]
    va_all = parse_pairs("va_all")
    assert va_all.count(("audio", "video")) == 2 and len(va_all) == 4
    for name in ("pairs_vt_va", "pairs_va_all"):
        config = load_config(str(ROOT / "configs" / "mcn" / f"{name}.py"))
        assert parse_pairs(tuple(config.model.pairs)) == parse_pairs(name.removeprefix("pairs_"))


# -- configs -------------------------------------------------------------------------------------


def test_the_study_configs_exist():
    names = {p.stem for p in CONFIGS} - {"__init__"}
    assert names >= set(CPU_CONFIGS) | {"howto100m"}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem != "__init__"], ids=lambda p: p.stem)
def test_config_loads_validates_and_documents_its_command(path):
    config = validate_config(load_config(str(path)))
    assert config.method == "mcn"
    doc = path.read_text().split('"""')[1]
    assert f"emojax train --config=configs/mcn/{path.stem}.py --workdir=" in doc
    assert "docs/mcn.md" in doc
    method = _method(config)
    if path.stem in CPU_CONFIGS:
        model = method.build_model()
        batch = method.example_batch(2)
        shapes = jax.eval_shape(lambda b: method.init_variables(model, jax.random.key(0), b), batch)
        assert "params" in shapes and "batch_stats" in shapes
        extra = jax.eval_shape(lambda: method.init_extra_state(jax.random.key(0)))
        assert bool(extra) == (config.model.w_cluster > 0)
        has_recon = any(k.startswith("recon_") for k in shapes["params"])
        assert has_recon == (config.model.w_recon > 0)
        has_space = any(k.startswith("space_") for k in shapes["params"])
        assert has_space == bool(config.model.spaces)


def test_howto100m_config_is_the_paper_scale_and_asks_for_its_files():
    path = ROOT / "configs" / "mcn" / "howto100m.py"
    config = validate_config(load_config(str(path)))
    m, c = config.model, config.model.cluster
    assert (m.embed_dim, m.video_dim, m.word_dim) == (6144, 4096, 300)
    assert tuple(m.audio_widths) == (128, 128, 256, 512, 1024)
    assert tuple(m.audio_depths) == (2, 2, 2, 2)
    assert (c.num_clusters, c.queue_size) == (256, 40_960)
    assert config.data.global_batch_size == 4096
    assert (config.optimizer.name, config.optimizer.learning_rate) == ("adam", 1e-4)
    assert (config.optimizer.schedule, config.optimizer.warmup_steps) == ("cosine", 5000)
    assert config.train.compute_dtype == "bfloat16"
    assert config.mesh.fsdp == -1
    assert "NOT RUNNABLE" not in path.read_text()  # trained on files: tests/test_mcn_data.py
    assert tuple(config.data.video_parts) == (2048, 2048) and config.data.max_words == 20
    method = _method(config)
    with pytest.raises(ValueError, match="config.data.eval_manual_dir is empty"):
        method.data_source("train")
    config.train.eval_every = 0
    with pytest.raises(ValueError, match="config.data.manual_dir is empty"):
        _method(config).data_source("train")


# -- errors --------------------------------------------------------------------------------------


def _tiny_config(**overrides):
    return small_config("", **overrides)


@pytest.mark.parametrize("pairs", [("video-speech",), ("video-video",), ("videotext",), ()])
def test_bad_pair_names(pairs):
    with pytest.raises(ValueError, match="model.pairs"):
        _method(_tiny_config(**{"model.pairs": pairs}))


def test_bad_pair_set_name():
    from emojax.models.mcn.method import parse_pairs

    with pytest.raises(ValueError, match="model.pairs='most'"):
        parse_pairs("most")


def test_bad_space_name():
    with pytest.raises(ValueError, match="video_smell"):
        _method(_tiny_config(**{"model.spaces": ("video_smell",)}))


def test_grad_accumulation_pushes_every_micro_batch(tiny_model):
    """Under gradient accumulation each micro-batch's loss sees the step's starting k-means
    state; update_extra_state (called per micro-batch, in order, as the trainer does) pushes
    each micro-batch's fused rows after the previous ones and keeps the last centroids."""
    method, model, variables = tiny_model
    assert _method(_tiny_config(**{"optimizer.grad_accum_steps": 2})).clustering
    start = jax.tree.map(
        lambda x: x.value if hasattr(x, "value") else x,
        method.init_extra_state(jax.random.key(0)),
        is_leaf=lambda x: hasattr(x, "value"),
    )
    loss = jax.jit(lambda v, b, r: method.loss(model, v, b, r, train=True))
    extra, pushed = start, []
    for index in range(2):
        batch = _good_batch(method, b=4, seed=index)
        _, (_, _, outputs) = loss({**variables, "extra": start}, batch, jax.random.key(index))
        extra = method.update_extra_state(extra, outputs, step=jnp.int32(7), rng=jax.random.key(9))
        pushed.append(np.asarray(outputs["push"]))
    kmeans = extra["kmeans"]
    assert int(kmeans.queue_ptr) == 8 and int(kmeans.queue_count) == 8 and int(kmeans.step) == 8
    np.testing.assert_array_equal(np.asarray(kmeans.queue)[:8], np.concatenate(pushed))
    np.testing.assert_array_equal(np.asarray(kmeans.centroids), np.asarray(outputs["centroids"]))


def test_queue_smaller_than_the_number_of_clusters():
    method = _method(_tiny_config(**{"model.cluster.queue_size": 3}))
    with pytest.raises(ValueError, match="queue_size=3 is smaller than num_clusters=4"):
        method.init_extra_state(jax.random.key(0))


def _good_batch(method, b=2, seed=0):
    rng = np.random.default_rng(seed)
    shapes = method.example_batch(b)
    batch = {k: rng.standard_normal(s.shape).astype(np.float32) for k, s in shapes.items()}
    batch["text_mask"] = np.ones(shapes["text_mask"].shape, np.float32)
    return batch


@pytest.fixture(scope="module")
def tiny_model():
    method = _method(_tiny_config())
    model = method.build_model()
    batch = _good_batch(method)
    variables = method.init_variables(model, jax.random.key(0), batch)
    return method, model, variables


def test_mismatched_clip_counts_across_modalities(tiny_model):
    method, model, variables = tiny_model
    batch = _good_batch(method)
    batch["audio"] = np.concatenate([batch["audio"], batch["audio"][:1]])
    with pytest.raises(ValueError, match="batch sizes differ between modalities"):
        model.apply(variables, batch)


def test_text_features_of_the_wrong_width(tiny_model):
    method, model, variables = tiny_model
    batch = _good_batch(method)
    batch["text"] = batch["text"][..., :300]
    with pytest.raises(ValueError, match=r"batch\['text'\] must be \[batch, words, 384\]"):
        model.apply(variables, batch)


def test_empty_caption_in_the_data_transform():
    from emojax.models.mcn.data import SensesAsClips, check_clip

    table = np.random.default_rng(0).standard_normal((10, 384)).astype(np.float32)
    transform = SensesAsClips(table, video_dim=32)
    example = {
        "image": np.zeros((32, 32, 3), np.uint8),
        "audio": np.zeros(4000, np.float32),
        "word_ids": np.array([1, 2, 3, 4, 5], np.int32),
        "label": np.int32(2),
    }
    clip = transform.map(example)
    assert clip["text"].shape == (5, 384) and clip["video"].shape == (32,)
    with pytest.raises(ValueError, match="empty caption"):
        transform.map({**example, "word_ids": np.zeros(0, np.int32)})
    good = {k: clip[k] for k in ("video", "audio", "text", "text_mask")}
    with pytest.raises(ValueError, match=r"empty caption \(no valid word: text_mask=\[0.0"):
        check_clip({**good, "text_mask": np.zeros(5, np.float32)}, where="clip 7")
    with pytest.raises(ValueError, match=r"clip 7: 'text' must be \[words, 300\]"):
        check_clip(good, word_dim=300, where="clip 7")
    with pytest.raises(ValueError, match=r"'text_mask' must be \[words\]"):
        check_clip({**good, "text_mask": np.ones(4)})
    with pytest.raises(ValueError, match=r"'video' must be \[64\]"):
        check_clip(good, video_dim=64)
    with pytest.raises(ValueError, match="non-finite"):
        check_clip({**good, "audio": np.full_like(good["audio"], np.nan)})
    assert check_clip(good, video_dim=32, word_dim=384) is good


def test_the_loss_is_jit_clean_on_device_arrays(tiny_model):
    """The jitted loss (k-means included) reads no device array on the host (the detector of
    tests/test_no_host_sync.py: device->host guard, and any read of a replicated array raises),
    an all-zero mask row included: the model never checks values of device arrays."""
    from test_no_host_sync import _put, no_host_sync

    method, model, variables = tiny_model
    batch = _good_batch(method, b=8)
    batch["text_mask"][3] = 0.0
    extra = jax.tree.map(
        lambda x: x.value if hasattr(x, "value") else x,
        method.init_extra_state(jax.random.key(0)),
        is_leaf=lambda x: hasattr(x, "value"),
    )
    variables, batch = _put(({**variables, "extra": extra}, batch))
    key = _put(jax.random.key(1))
    step = jax.jit(lambda v, b, r: method.loss(model, v, b, r, train=True))
    with no_host_sync(jitted=True):  # no transfer either way, compilation included
        loss, (metrics, _, new_extra) = step(variables, batch, key)
    assert np.isfinite(float(loss))
    assert set(new_extra) == {"centroids", "push"} and new_extra["push"].shape == (8, 16)
    assert set(metrics) == {"loss_mms", "loss_cluster", "loss_recon"}
    assert jnp.all(jnp.isfinite(jnp.stack(list(metrics.values()))))
