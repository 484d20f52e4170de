"""UniEmoX on EmoSet: the source (keys, shapes, prompt ids across splits), the attribute captions
(absent attributes leave their sentence out), the CLIP BPE ids (EOS last, where the text tower
pools), the prompt table of ``init_frozen`` and one training step, on a tiny fake EmoSet folder
and a tiny local CLIP tokenizer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from emoset_fixture import emoset_info
from tokenizers import pre_tokenizers

from emojax.data import emoset as emoset_data
from emojax.models.uniemox import data, emoset
from emojax.models.uniemox.method import text_mask
from emojax.nn.clip import CLIP, CLIPConfig, eot_positions
from emojax.train import load_config

CONFIGS = Path(__file__).parents[1] / "emojax" / "configs" / "uniemox"
WORDS = (
    "the scene type of this photo is main subjects are image has a brightness and color "
    "saturation human facial expression action being performed overall emotion conveyed "
    "beach street dog car tree happy sad running amusement anger awe contentment disgust "
    "excitement fear sadness"
).split()
LENGTH = 24


def _fake_emoset(root: Path) -> None:
    """12 images, 8 emotions; train 6, validation 3, test 3; odd images have no expression /
    action; image 4 has no objects and no colorfulness; sizes vary (20x24 .. 31x24)."""
    from PIL import Image

    info = emoset_info()
    root.mkdir(parents=True)
    (root / "info.json").write_text(json.dumps(info))
    splits = {"train.json": [], "val.json": [], "test.json": []}
    rng = np.random.default_rng(0)
    for i in range(12):
        emotion = emoset_data.EMOTIONS[i % 8]
        name = f"{emotion}_{i:05d}"
        annotation = {"emotion": emotion, "brightness": 0.4, "colorfulness": 0.6}
        annotation |= {
            "scene": ["beach", "street"][i % 2],
            "object": [["dog", "tree"], ["car"]][i % 2],
        }
        if i % 2 == 0:
            annotation |= {"facial_expression": "happy", "human_action": "running"}
        if i == 4:
            annotation |= {"object": []}
            del annotation["colorfulness"]
        for folder in ("image", "annotation"):
            os.makedirs(root / folder / emotion, exist_ok=True)
        pixels = rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "image" / emotion / f"{name}.jpg")
        (root / "annotation" / emotion / f"{name}.json").write_text(json.dumps(annotation))
        split = "train.json" if i < 6 else ("val.json" if i < 9 else "test.json")
        splits[split].append(
            [emotion, name, f"image/{emotion}/{name}.jpg", f"annotation/{emotion}/{name}.json"]
        )
    for file, entries in splits.items():
        (root / file).write_text(json.dumps(entries))


def _tiny_tokenizer(folder: Path) -> int:
    """A CLIP BPE tokenizer (byte-level alphabet, merges spelling each of WORDS, BOS, EOS last)
    saved to ``folder``; returns its size."""
    from transformers import CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = chars + [c + "</w>" for c in chars]
    merges = []
    for word in WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            if (parts[0], parts[1]) not in merges:
                merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1], *parts[2:]]
            if parts[0] not in vocab:
                vocab.append(parts[0])
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    tokenizer.save_pretrained(str(folder))
    return len(vocab)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("emoset")
    _fake_emoset(root / "manual")
    size = _tiny_tokenizer(root / "clip")
    return {
        "manual": str(root / "manual"),
        "data": str(root / "tfds"),
        "clip": str(root / "clip"),
        "vocab": size,
    }


def _source(fake, split, size=16):
    return emoset.EmosetScenes(
        split, manual_dir=fake["manual"], data_dir=fake["data"], image_size=size
    )


def test_source_items_and_prompt_ids_across_splits(fake):
    sources = [_source(fake, s) for s in emoset.SPLITS]
    assert [len(s) for s in sources] == [6, 3, 3]
    ids = []
    for source in sources:
        for i in range(len(source)):
            item = source[i]
            assert set(item) == {"image", "box", "label", "prompt_id"}
            assert item["image"].shape == (16, 16, 3) and item["image"].dtype == np.uint8
            assert item["box"].dtype == np.float32 and not item["box"].any()  # no person box
            assert item["label"].dtype == np.int32 and item["prompt_id"].dtype == np.int32
            ids.append(int(item["prompt_id"]))
    assert ids == list(range(12))
    # labels: the emotion index of info.json
    image_ids = [sources[0].source[i]["image_id"].decode() for i in range(6)]
    for i, image_id in enumerate(image_ids):
        assert sources[0][i]["label"] == emoset_data.EMOTIONS.index(image_id.rsplit("_", 1)[0])
    with pytest.raises(ValueError, match="manual_dir is empty"):
        emoset.EmosetScenes("train", manual_dir="", image_size=16)


def _by_id(source):
    return {source.source[i]["image_id"].decode(): i for i in range(len(source))}


def test_captions_fill_the_templates_and_leave_absent_attributes_out(fake):
    train = _source(fake, "train")
    index = _by_id(train)
    full = train.attributes(index["amusement_00000"])
    assert full == {
        "scene": "beach",
        "subjects": "dog and tree",
        "brightness": "0.4",
        "saturation": "0.6",
        "expression": "happy",
        "action": "running",
        "emotion": "amusement",
    }
    expected = (
        "The scene type of this photo is beach. The main subjects are dog and tree. "
        "The image has a brightness of 0.4 and color saturation of 0.6. "
        "Human facial expression is happy. The action being performed is running. "
        "The overall emotion conveyed is amusement."
    )
    assert emoset.caption_text(full) == expected
    assert emoset.caption_text(full) == " ".join(
        t.format(*v)
        for t, v in zip(
            data.TEMPLATES,
            [
                ("beach",),
                ("dog and tree",),
                ("0.4", "0.6"),
                ("happy",),
                ("running",),
                ("amusement",),
            ],
            strict=True,
        )
    )
    # odd image: no expression, no action -> those sentences are left out
    odd = emoset.caption_text(train.attributes(index["anger_00001"]))
    assert odd == (
        "The scene type of this photo is street. The main subjects are car. "
        "The image has a brightness of 0.4 and color saturation of 0.6. "
        "The overall emotion conveyed is anger."
    )
    # image 4: no objects, no colorfulness -> no subjects, no brightness/saturation sentence
    four = emoset.caption_text(train.attributes(index["disgust_00004"]))
    assert four == (
        "The scene type of this photo is beach. Human facial expression is happy. "
        "The action being performed is running. The overall emotion conveyed is disgust."
    )
    assert emoset.join_names(["a", "b", "c"]) == "a, b and c"


def test_clip_ids_end_with_eos_and_pool_there(fake):
    tokenizer = emoset.load_tokenizer(fake["clip"])
    eos = tokenizer.eos_token_id
    assert eos == fake["vocab"] - 1  # EOS is the largest id, as in real CLIP
    table = emoset.all_captions(tokenizer, LENGTH, manual_dir=fake["manual"], data_dir=fake["data"])
    assert table.shape == (12, LENGTH) and table.dtype == np.int32
    first = tokenizer.convert_ids_to_tokens([int(t) for t in table[0] if t])
    assert first[0] == "<|startoftext|>" and first[-1] == "<|endoftext|>"
    for row in table:  # truncated captions (> LENGTH tokens) keep EOS last
        last = int(np.flatnonzero(row)[-1])
        assert row[last] == eos and np.sum(row == eos) == 1
        # both pooling rules of emojax's CLIP (first EOS id; argmax id) pick that position
        assert int(eot_positions(row[None], eos)[0]) == last
        assert int(eot_positions(row[None], 2)[0]) == last
    long = emoset.tokenize(tokenizer, ["the " * 40], LENGTH)[0]
    assert long[-1] == eos and long[0] == tokenizer.bos_token_id
    # the prompt table attends up to the EOS, also over real id-0 tokens ('!')
    ids = np.array([[fake["vocab"] - 2, 0, 5, eos, 0, 0]], np.int32)
    clip = CLIP(_tiny_clip_config(fake["vocab"], eos))
    np.testing.assert_array_equal(text_mask(ids, clip), [[1, 1, 1, 1, 0, 0]])


def _hf_dict(vocab: int, eos: int) -> dict:
    """A Hugging Face CLIP config of the tiny teacher (``eos``: 2 = the old configs)."""
    return {
        "text_config": dict(
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=LENGTH,
            eos_token_id=eos,
        ),
        "vision_config": dict(
            image_size=16,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            hidden_act="quick_gelu",
        ),
        "projection_dim": 16,
    }


def _tiny_clip_config(vocab: int, eos: int) -> CLIPConfig:
    return CLIPConfig.from_dict(_hf_dict(vocab, eos))


def _hf_config(path: Path, vocab: int, eos: int) -> str:
    """The tiny teacher's config.json at ``path``."""
    path.write_text(json.dumps(_hf_dict(vocab, eos)))
    return str(path)


def _tiny_pretrain(fake, tmp_path: Path, eos: int):
    """``pretrain_vitl16_emoset.py`` at test size on the fake EmoSet, a tiny random teacher."""
    config = load_config(str(CONFIGS / "pretrain_vitl16_emoset.py"))
    m, d, t = config.model, config.data, config.train
    small = dict(hidden_size=16, num_layers=1, num_heads=2, mlp_dim=32)
    m.encoder.update(small, image_size=16, patch_size=8)
    m.decoder.update(small)
    m.update(remat=False, mask_ratio=0.5, person_mask_ratio=0.5)
    m.teacher.hf_config = _hf_config(tmp_path / "config.json", fake["vocab"], eos)
    m.teacher.tokenizer = fake["clip"]
    d.update(manual_dir=fake["manual"], data_dir=fake["data"], image_size=16)
    d.update(num_train=6, num_validation=3, num_test=3, global_batch_size=8, worker_count=0)
    t.update(num_steps=1, log_every=1, save_every=1, compute_dtype="float32")
    return config


def _teacher_params(config, tmp_path: Path) -> str:
    from emojax.convert import load_flax_params, save_flax_params
    from emojax.models.uniemox.method import clip_config

    teacher = clip_config(config.model.teacher)
    images = np.zeros((1, 16, 16, 3), np.float32)
    ids = np.zeros((1, LENGTH), np.int32)
    params = CLIP(teacher).init(jax.random.key(0), images, ids)["params"]
    path = tmp_path / "teacher.safetensors"
    save_flax_params(params, path)
    assert load_flax_params(path)["logit_scale"].shape == ()  # 0-d params stay 0-d
    return str(path)


@pytest.mark.parametrize("eos", ["tokenizer", 2])
def test_init_frozen_prompt_table_one_normalised_row_per_example(fake, tmp_path, eos):
    from emojax.models import get_method
    from emojax.train import validate_config

    eos_id = fake["vocab"] - 1 if eos == "tokenizer" else 2
    config = _tiny_pretrain(fake, tmp_path, eos_id)
    config.model.teacher.path = _teacher_params(config, tmp_path)
    method = get_method("uniemox")(validate_config(config))
    frozen = method.init_frozen(jax.random.key(0), None)
    table = np.asarray(frozen["prompts"])
    assert table.shape == (12, 16)
    np.testing.assert_allclose(np.linalg.norm(table, axis=1), 1.0, rtol=1e-5)
    assert len({tuple(np.round(r, 5)) for r in table}) > 1  # captions differ


def test_missing_tokenizer_and_mismatched_eos_are_clear_errors(fake, tmp_path):
    from emojax.models import get_method
    from emojax.train import validate_config

    config = _tiny_pretrain(fake, tmp_path, fake["vocab"] - 1)
    config.model.teacher.path = "unused.safetensors"
    for value, error, match in (
        ("", ValueError, "model.teacher.tokenizer is empty.*--config.model.teacher.tokenizer="),
        (str(tmp_path / "nope"), FileNotFoundError, "is not a folder.*Hugging Face CLIP folder"),
    ):
        config.model.teacher.tokenizer = value
        method = get_method("uniemox")(validate_config(config))
        with pytest.raises(error, match=match):
            method.init_frozen(jax.random.key(0), None)
    config = _tiny_pretrain(fake, tmp_path, 7)  # a teacher that pools at id 7
    config.model.teacher.path = "unused.safetensors"
    method = get_method("uniemox")(validate_config(config))
    with pytest.raises(ValueError, match="EOS id .* is not where the teacher pools"):
        method.init_frozen(jax.random.key(0), None)


def test_classifier_reads_emoset_labels(fake):
    from emojax.models import get_method

    config = load_config(str(CONFIGS / "finetune.py"))
    config.data = ml_collections.ConfigDict(
        dict(source="emoset", manual_dir=fake["manual"], data_dir=fake["data"], image_size=16)
    )
    source = get_method("uniemox_classify")(config).data_source("test")
    assert len(source) == 3 and {"image", "label"} <= set(source[0])
    assert 0 <= int(source[0]["label"]) < config.model.num_classes


@pytest.mark.slow
def test_one_train_step_on_emoset(fake, tmp_path):
    from emojax.train import train

    config = _tiny_pretrain(fake, tmp_path, fake["vocab"] - 1)
    config.model.teacher.path = _teacher_params(config, tmp_path)
    train(config, tmp_path / "run")
    assert (tmp_path / "run" / "frozen" / "axes.json").is_file()
