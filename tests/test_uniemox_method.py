"""UniEmoX: the MAE decoder predicts masked patch positions, the guidance losses against PyTorch,
the views, the built-in photos (attributes from the pixels, disjoint splits), the image folders,
every config, and the chain clip_teacher -> pretrain with the teacher frozen (no gradient, no
optimizer state) on a tiny emojax_senses copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from emojax.losses import mae_loss
from emojax.losses.guidance import feature_alignment_loss, prompt_similarity_loss
from emojax.models.uniemox import data, views
from emojax.models.uniemox.method import mae_target, per_example_mae
from emojax.models.uniemox.model import UniEmoXPretrain
from emojax.nn.mae import MAEDecoderConfig, random_masking
from emojax.nn.vit import ViTConfig
from emojax.train import load_config, validate_config

CONFIGS = Path(__file__).parents[1] / "emojax" / "configs" / "uniemox"
STAGES = ("clip_teacher", "pretrain", "finetune", "linear_probe")
SMALL = {"num_train": 48, "num_validation": 16, "num_test": 16}


# -- MAE: the decoder predicts the masked patch positions --------------------------------------


@pytest.fixture(scope="module")
def tiny_mae():
    encoder = ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    decoder = MAEDecoderConfig(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48
    )
    model = UniEmoXPretrain(encoder, decoder)
    images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    keep, mask, restore = random_masking(jax.random.key(2), 2, 16, 0.5)
    params = jax.jit(model.init)(jax.random.key(0), images, (keep, restore))["params"]
    apply = jax.jit(lambda x: model.apply({"params": params}, x, (keep, restore))["pred"])
    return apply, images, mask


def _patch_pixels(patch_mask: np.ndarray) -> np.ndarray:
    """[2, 16] patch mask -> [2, 16, 16, 1] pixel mask (4x4 patches, row-major)."""
    grid = patch_mask.reshape(2, 4, 4)
    return np.repeat(np.repeat(grid, 4, axis=1), 4, axis=2)[..., None]


def test_masking_keeps_the_unmasked_patches_in_order():
    keep, mask, restore = random_masking(jax.random.key(3), 4, 36, 0.75)
    assert keep.shape == (4, 9) and mask.shape == (4, 36)
    assert np.all(np.asarray(mask).sum(1) == 27)
    for b in range(4):
        assert set(np.asarray(keep[b]).tolist()) == set(np.flatnonzero(np.asarray(mask[b]) == 0))
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(jax.random.key(0), 1, 4, 1.0)


def test_decoder_predicts_every_masked_position(tiny_mae):
    apply, images, mask = tiny_mae
    pred = apply(images)
    assert pred.shape == (2, 16, 4 * 4 * 3)
    masked = np.asarray(pred)[np.asarray(mask) == 1]
    # one prediction per position (the released code broadcast the CLS row to all of them)
    assert np.std(masked, axis=0).mean() > 1e-3
    # the encoder sees only the visible patches: changing masked pixels leaves pred unchanged
    noise = jax.random.normal(jax.random.key(5), images.shape)
    hidden = jnp.where(_patch_pixels(np.asarray(mask)) == 1, noise, images)
    np.testing.assert_allclose(apply(hidden), pred, rtol=1e-5, atol=1e-5)
    shown = jnp.where(_patch_pixels(np.asarray(mask)) == 0, noise, images)
    assert np.abs(np.asarray(apply(shown) - pred)).max() > 1e-3


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_loss_counts_masked_patches_only(tiny_mae, norm_pix):
    apply, images, mask = tiny_mae
    pred = apply(images)
    loss = lambda x: per_example_mae(pred, mae_target(x, 4, norm_pix), mask)  # noqa: E731
    base = loss(images)
    np.testing.assert_allclose(
        jnp.mean(base),
        mae_loss(pred, mae_target(images, 4, False), mask, norm_pix=norm_pix),
        rtol=1e-5,
    )
    noise = jax.random.normal(jax.random.key(6), images.shape)
    pixels = _patch_pixels(np.asarray(mask))
    visible_changed = jnp.where(pixels == 0, noise, images)
    masked_changed = jnp.where(pixels == 1, noise, images)
    np.testing.assert_allclose(loss(visible_changed), base, rtol=1e-6)
    assert np.all(np.abs(np.asarray(loss(masked_changed) - base)) > 1e-3)


# -- guidance losses against PyTorch -----------------------------------------------------------


def _torch_guidance(f, g, text, scale=14.3):
    """The REFERENCES.md formula in PyTorch: 1 - cos(f, g), 1 - cos(n(s f T^T), n(s g T^T))."""
    f = torch.tensor(np.asarray(f), dtype=torch.float64, requires_grad=True)
    g, text = torch.tensor(np.asarray(g), dtype=torch.float64), torch.tensor(np.asarray(text))
    t = torch.nn.functional.normalize(text.double(), dim=-1)
    fn, gn = torch.nn.functional.normalize(f, dim=-1), torch.nn.functional.normalize(g, dim=-1)
    image = 1 - torch.nn.functional.cosine_similarity(f, g, dim=-1)
    sim_f = torch.nn.functional.normalize(scale * fn @ t.T, dim=-1)
    sim_g = torch.nn.functional.normalize(scale * gn @ t.T, dim=-1)
    prompt = 1 - (sim_f * sim_g).sum(-1)
    (grad,) = torch.autograd.grad((image.mean() + prompt.mean()), f)
    return image.detach().numpy(), prompt.detach().numpy(), grad.numpy()


def test_guidance_losses_match_pytorch():
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=(2, 6, 16)).astype(np.float32) * 3
    text = rng.normal(size=(6, 16)).astype(np.float32)
    image, prompt, grad = _torch_guidance(f, g, text)
    np.testing.assert_allclose(feature_alignment_loss(f, g), image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prompt_similarity_loss(f, g, text), prompt, rtol=1e-5, atol=1e-6)
    total = lambda x: (
        jnp.mean(feature_alignment_loss(x, g))
        + jnp.mean(  # noqa: E731
            prompt_similarity_loss(x, g, text)
        )
    )
    np.testing.assert_allclose(jax.grad(total)(f), grad, rtol=1e-4, atol=1e-6)
    # g and T are targets: no gradient reaches them
    assert not np.any(jax.grad(lambda y: jnp.sum(prompt_similarity_loss(f, y, text)))(g))
    with pytest.raises(ValueError, match="text must be"):
        prompt_similarity_loss(f, g, text[:, :8])


# -- views and built-in photos -----------------------------------------------------------------


def test_crop_resize_and_person_fallback():
    images = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
    boxes = jnp.array([[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.5]])
    crops = jax.jit(views.crop_resize, static_argnums=2)(images, boxes, 4)  # aligned: a copy
    np.testing.assert_allclose(crops[0], images[0, 2:6, 4:8], atol=1e-4)
    np.testing.assert_allclose(crops[1], images[1, 0:4, 0:4], atol=1e-4)
    no_box = jnp.array([[0.3, 0.3, 0.6, 0.6], [0.0, 0.0, 0.0, 0.0]])
    person_boxes = jax.jit(views.person_boxes, static_argnums=2)
    chosen = person_boxes(jax.random.key(0), no_box, "random_crop")
    np.testing.assert_allclose(chosen[0], no_box[0])
    assert float(chosen[1, 2] - chosen[1, 0]) > 0.05  # a random crop replaced the missing box
    np.testing.assert_allclose(person_boxes(jax.random.key(0), no_box, "full")[1], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="person_fallback"):
        views.person_boxes(jax.random.key(0), no_box, "yolo")
    # a flip mirrors the person box with the image: its crop is the original crop, mirrored
    crop = jax.jit(views.crop_resize, static_argnums=2)
    flips = 0
    for seed in range(3):
        flipped, moved = jax.jit(views.random_flip)(jax.random.key(seed), images, boxes)
        for b in range(2):
            was_flipped = not np.allclose(flipped[b], images[b])
            flips += was_flipped
            want = crops[b][:, ::-1] if was_flipped else crops[b]
            np.testing.assert_allclose(crop(flipped, moved, 4)[b], want, atol=1e-4)
    assert 0 < flips < 6
    _, kept = views.random_flip(jax.random.key(0), images, no_box)
    np.testing.assert_allclose(kept[1], 0.0)  # "no box" stays no box


@pytest.fixture(scope="module")
def senses_dir(tmp_path_factory):
    from emojax.data import senses

    root = str(tmp_path_factory.mktemp("uniemox_senses"))
    senses.get_builder(root, seed=0, workers=0, **SMALL)
    return root


def test_builtin_photos_attributes_from_pixels_and_disjoint_splits(senses_dir):
    sizes = {"train": 48, "validation": 16, "test": 16}
    train = data.SensesScenes("train", sizes, data_dir=senses_dir)
    test = data.SensesScenes("test", sizes, data_dir=senses_dir)
    ex = train[3]
    assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
    assert ex["caption"].shape == (48,) and data.EOT in ex["caption"].tolist()
    full = train.example(3)
    y0, x0, y1, x1 = (full["box"] * 64).astype(int)
    assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
    # brightness / saturation against PIL's own conversions of the same pixels
    pil = Image.fromarray(full["image"])
    luma = np.asarray(pil.convert("L"), np.float32).mean() / 255
    sat = np.asarray(pil.convert("HSV"), np.float32)[..., 1].mean() / 255
    assert abs(data.brightness(full["image"]) - luma) < 0.01
    assert abs(data.saturation(full["image"]) - sat) < 0.01
    assert full["attributes"]["brightness"] == data.level(luma, data.BRIGHTNESS_EDGES)
    assert full["attributes"]["emotion"] == data.EMOTIONS[int(ex["label"])]
    # prompt ids index one table; the splits' scene words do not overlap
    ids = {int(train[i]["prompt_id"]) for i in range(len(train))}
    assert ids == set(range(48)) and int(test[0]["prompt_id"]) == 64
    words = lambda s: {s.example(i)["attributes"]["scene"] for i in range(len(s))}  # noqa: E731
    assert not words(train) & words(test)
    table = data.all_captions(sizes, data_dir=senses_dir)
    np.testing.assert_array_equal(table[64], test[0]["caption"])


# -- configs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [*STAGES, "pretrain_vitl16_emoset"])
def test_configs_load_and_link_through_stages_root(stage):
    config = load_config(str(CONFIGS / f"{stage}.py"))
    validate_config(config)
    config.stages_root = "/runs/x"
    if stage in ("finetune", "linear_probe"):
        assert config.init_from.path == "/runs/x/pretrain"
    if stage == "pretrain":
        assert config.model.teacher.path == "/runs/x/clip_teacher"


def test_study_overrides_reach_the_stages_that_have_them_and_the_table_averages_seeds():
    from emojax.models.uniemox import study

    shared = {"model.w_image": 0.0, "train.num_steps": 3, "init_from.path": ""}
    pre = study._config("pretrain", "/runs/s0", 1, shared)
    assert (pre.seed, pre.train.num_steps, pre.model.w_image) == (1, 3, 0.0)
    assert pre.model.teacher.path == "/runs/s0/clip_teacher"
    teacher = study._config("clip_teacher", "/runs/s0", 1, shared)  # no w_image, no init_from
    assert teacher.train.num_steps == 3 and "w_image" not in teacher.model
    one = {"best_validation": 0.25, "final": 0.2}
    cells = {(v, t): one for v in study.VARIANTS for t in study.TRANSFERS}
    other = {**cells, ("full", "finetune"): {"best_validation": 0.75, "final": 0.2}}
    text = study.table([cells, other], teacher=[0.3, 0.4])
    assert "| full | 50.0 +- 25.0 | 25.0 +- 0.0 |" in text and "over 2 seed(s)" in text
    assert "at the best-validation checkpoint" in text
    assert text.endswith("| (CLIP teacher's image embedding) | - | 35.0 +- 5.0 |")
    final = study.table([cells, other], selection="final")
    assert "| full | 20.0 +- 0.0 | 20.0 +- 0.0 |" in final and "at the final checkpoint" in final


def test_study_softmax_probe_reads_a_linear_signal_and_not_noise():
    from emojax.models.uniemox import study

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    labels = rng.integers(0, 4, 600)
    features = (centres[labels] + rng.normal(size=(600, 16))).astype(np.float32)
    split = (features[:400], labels[:400], features[400:], labels[400:])
    assert study.softmax_probe_top1(*split, iterations=100) > 0.9
    shuffled = (features[:400], rng.permutation(labels[:400]), features[400:], labels[400:])
    assert study.softmax_probe_top1(*shuffled, iterations=100) < 0.45  # chance 0.25


def test_study_variant_subsets_train_the_teacher_only_before_a_guided_pretraining(
    monkeypatch, tmp_path
):
    import emojax.train
    from emojax.models.uniemox import study

    trained, evaluated = [], []

    def train_to_end(config, workdir):  # a transfer run: best validation at 300, final 500
        os.makedirs(workdir, exist_ok=True)
        trained.append(os.path.relpath(workdir, tmp_path))
        if "eval" in config and config.train.keep_best_metric == "eval/top1":
            n = config.train.num_steps
            rows = [{"step": s, "eval/top1": 0.3 if s == 300 else 0.2} for s in (100, 300, n)]
            with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            for step in (300, n):
                os.makedirs(os.path.join(workdir, "checkpoints", str(step)), exist_ok=True)

    def evaluate_split(config, workdir, split, step=None):
        evaluated.append((os.path.relpath(workdir, tmp_path), step))
        return {"top1": 0.5 if step == 300 else 0.4, "step": step, "f1_macro": 0.4}

    monkeypatch.setattr(emojax.train, "train_to_end", train_to_end)
    monkeypatch.setattr(emojax.train, "evaluate_split", evaluate_split)
    results = study.run_seed(str(tmp_path), 0, {}, ("mae", "scene"))
    assert trained == [
        "pretrain_mae",
        "finetune_mae",
        "linear_probe_mae",
        "clip_teacher",  # after the unguided runs: another process may be training it meanwhile
        "pretrain_scene",
        "finetune_scene",
        "linear_probe_scene",
    ]
    scores = {"best_validation": 0.5, "final": 0.4}
    assert results == {(v, t): scores for v in ("mae", "scene") for t in study.TRANSFERS}
    assert evaluated[:2] == [("finetune_mae", 300), ("finetune_mae", 500)] and len(evaluated) == 8
    study.run_seed(str(tmp_path), 0, {}, ("mae",))  # finished runs: the kept test scores
    assert len(evaluated) == 8
    study.run_seed(str(tmp_path), 0, {"train.num_steps": 700}, ("mae",))  # longer: the new end
    assert evaluated[8:] == [("finetune_mae", 700), ("linear_probe_mae", 700)]
    trained.clear()
    study.run_seed(str(tmp_path), 0, {}, ("scratch",))
    assert trained == ["finetune_scratch", "linear_probe_scratch"]
    assert study.main([f"--workdir={tmp_path}", "--seeds=0", "--variants=scratch"]) == ""
    with pytest.raises(SystemExit):
        study.main([f"--workdir={tmp_path}", "--variants=mea"])


# -- the chain: teacher -> pretraining (teacher frozen) -> linear probe -------------------------


def _tiny(stage: str, root, senses_dir):
    """``configs/uniemox/<stage>.py`` at test size, its stages under ``root``."""
    config = load_config(str(CONFIGS / f"{stage}.py"))
    config.stages_root = str(root)
    m, d, t = config.model, config.data, config.train
    d.update(SMALL, data_dir=senses_dir, global_batch_size=16)
    t.update(num_steps=1, eval_every=0, save_every=1, log_every=1, keep_best_metric="")
    small = dict(hidden_size=32, num_layers=1, num_heads=2, mlp_dim=64)
    if "teacher" in m:
        m.teacher.update(small, patch_size=16, text_hidden_size=32, text_num_layers=1)
        m.teacher.update(text_num_heads=2, text_mlp_dim=64, projection_dim=32)
    if "encoder" in m:
        m.encoder.update(small, image_size=32)
    if "decoder" in m:
        m.decoder.update(small)
    return config


def _paths(tree) -> list[str]:
    return ["/".join(map(str, p)) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.slow
def test_chain_teacher_is_frozen_in_pretraining(senses_dir, tmp_path):
    from emojax.models import get_method
    from emojax.train import restore, train
    from emojax.train.checkpoint import read_state

    teacher_config = _tiny("clip_teacher", tmp_path, senses_dir)
    train(teacher_config, tmp_path / "clip_teacher")
    teacher = read_state(tmp_path / "clip_teacher" / "checkpoints")["params"]
    # the study's reference row reads the teacher's image embedding of a whole split
    from emojax.models.uniemox import study

    x, y = study.teacher_embeddings(teacher_config, str(tmp_path / "clip_teacher"), "test")
    assert x.shape == (16, 32) and np.all(np.isfinite(x)) and x.std() > 0
    source = get_method("uniemox_clip")(validate_config(teacher_config)).data_source("test")
    np.testing.assert_array_equal(y, [source[i]["label"] for i in range(16)])
    config = _tiny("pretrain", tmp_path, senses_dir)
    train(config, tmp_path / "pretrain")
    restored = restore(config, tmp_path / "pretrain")
    frozen = restored.frozen
    for a, b in zip(jax.tree.leaves(frozen["teacher"]), jax.tree.leaves(teacher), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert frozen["prompts"].shape == (80, 32)  # one row per caption of the three splits
    np.testing.assert_allclose(np.linalg.norm(frozen["prompts"], axis=1), 1.0, rtol=1e-5)
    state = read_state(tmp_path / "pretrain" / "checkpoints")
    assert not any("teacher" in p or "prompts" in p for p in _paths(state))  # not in params/opt
    assert (tmp_path / "pretrain" / "frozen" / "axes.json").is_file()
    # the teacher gets no gradient through the loss
    method = get_method(config.method)(validate_config(config))
    model = method.build_model()
    sources = method.data_source("validation")
    batch = {k: np.stack([sources[i][k] for i in range(4)]) for k in method.example_batch(4)}

    def loss_of(fr):
        variables = {"params": restored.state.params, "frozen": fr}
        return method.loss(model, variables, batch, jax.random.key(0), train=True)[0]

    grads = jax.jit(jax.grad(loss_of))(jax.tree.map(jnp.asarray, dict(frozen)))
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(grads))

    # MAE's fixed sin-cos position tables: not trained, no optimizer state
    from emojax.nn.mae import sincos_2d

    np.testing.assert_allclose(state["params"]["encoder"]["pos_embedding"][0], sincos_2d(4, 32))
    assert not any("pos_embedding" in p for p in _paths(state["opt_state"]))


def test_linear_probe_trains_only_the_head():
    from emojax.models import get_method

    config = validate_config(load_config(str(CONFIGS / "linear_probe.py")))
    method = get_method(config.method)(config)
    params = {"encoder": {"norm": {"scale": 0}}, "head": {"kernel": 0, "bias": 0}}
    mask = method.trainable(params)
    assert mask == {"encoder": {"norm": {"scale": False}}, "head": {"kernel": True, "bias": True}}


def test_sincos_table_matches_transformers_vitmae():
    from transformers.models.vit_mae import modeling_vit_mae

    from emojax.nn.mae import sincos_2d

    ref = modeling_vit_mae.build_2d_sinusoidal_position_embedding(6, 6, 32, cls_token=True)
    np.testing.assert_allclose(sincos_2d(6, 32), ref.numpy(), atol=1e-6)


# -- downstream image folders ------------------------------------------------------------------


def _write_images(folder, names, colour):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (20, 12), colour).save(folder / name)


def test_image_folder_layouts_splits_and_errors(tmp_path):
    from emojax.data import image_folder

    root = tmp_path / "e6"
    for i, cls in enumerate(("anger", "joy")):
        _write_images(root / cls, [f"{k}.png" for k in range(10)], (40 * i, 100, 200))
    parts = {
        s: image_folder.load_source(s, str(root), image_size=8)
        for s in ("train", "validation", "test")
    }
    assert [len(parts[s]) for s in parts] == [14, 2, 4]  # 7:1:2 per class (Emotion6 protocol)
    seen = [p for s in parts.values() for p, _ in s.rows]
    assert len(seen) == len(set(seen)) == 20
    ex = parts["test"][0]
    assert ex["image"].shape == (8, 8, 3) and ex["label"] in (0, 1)
    # the same set as a CSV of path,label (header optional)
    csv_path = root / "labels.csv"
    rows = [f"{c}/{k}.png,{c}" for c in ("anger", "joy") for k in range(10)]
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    from_csv = image_folder.load_source("train", str(csv_path), image_size=8, splits="fi")
    assert from_csv.classes == ("anger", "joy") and len(from_csv) == 16
    csv_path.write_text("path,label\nanger/0.png,anger\nanger/0.png\n")
    image_folder.scan.cache_clear()
    with pytest.raises(ValueError, match=r"labels.csv:3: expected 'path,label'"):
        image_folder.load_source("train", str(root), image_size=8)
    csv_path.write_text("anger/missing.png,anger\n")
    image_folder.scan.cache_clear()
    with pytest.raises(FileNotFoundError, match=r"labels.csv:1: image 'anger/missing.png'"):
        image_folder.load_source("train", str(root), image_size=8)
    (root / "anger" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: cannot read"):
        image_folder.load_image(str(root / "anger" / "bad.png"), 8)
    with pytest.raises(ValueError, match="splits="):
        image_folder.load_source("train", str(root), image_size=8, splits="nope")
