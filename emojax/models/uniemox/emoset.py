"""UniEmoX on EmoSet-118K (``config.data.source="emoset"``): photos, attribute captions, CLIP ids.

Each ``emojax.data.emoset`` example becomes ``{"image" [S, S, 3] uint8 (shorter side resized to
S, centre crop, as ``image_folder``), "box" [4] float32 zeros (EmoSet has no person box: the
model's ``person_fallback`` view), "label" [] int32 (the emotion, info.json order),
"prompt_id" [] int32}``; ``prompt_id`` = the split's offset (train, then validation, then test)
+ index, the row of the prompt table of :func:`all_captions`.

Captions: the six templates of REFERENCES.md ("UniEmoX", ``data.captions``) filled with
EmoSet's attribute names: scene, main subjects = the object names ("dog", "dog and tree",
"dog, car and tree"), brightness and colorfulness (the template's "color saturation"; EmoSet's
names, e.g. "0.4"), facial expression, human action, emotion. Underscores become spaces. An
ABSENT attribute (index -1, name "", no objects) leaves its sentence out (brightness and
saturation share one sentence: it is left out when either is absent). The sentences are joined
by spaces and tokenised with the teacher's CLIP BPE tokenizer (``model.teacher.tokenizer``, a
local Hugging Face folder): ``<|startoftext|> ... <|endoftext|>``, truncated so that EOS stays
last, zero-padded to the teacher's length.
"""

from __future__ import annotations

import functools
import io
import json
import os

import numpy as np

from emojax.data import emoset
from emojax.data.image_folder import load_image
from emojax.models.uniemox.data import captions

SPLITS = tuple(emoset.SPLIT_FILES)  # prompt_id order: train, validation, test
TOKENIZER_HINT = (
    "pass --config.model.teacher.tokenizer=CLIP_DIR, the local Hugging Face CLIP folder the "
    "teacher's weights were converted from (tokenizer.json, or vocab.json and merges.txt)"
)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def join_names(names) -> str:
    """``("dog",)`` -> "dog"; ``("dog", "tree")`` -> "dog and tree"; 3+ -> "a, b and c"."""
    names = [n for n in names if n]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@functools.cache
def index_names(manual_dir: str) -> dict[str, tuple[str, ...]]:
    """``{"emotion": names, "object": names}`` by index, from ``manual_dir/info.json``."""
    path = os.path.join(manual_dir, "info.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"emoset: {path} not found; config.data.manual_dir must be the EmoSet-118K folder "
            "(info.json names the emotions and objects of the captions)"
        )
    with open(path, encoding="utf-8") as f:
        info = json.load(f)
    out = {}
    for attribute in ("emotion", "object"):
        table = info.get(attribute, {}).get("label2idx", {})
        names = [""] * (max(table.values(), default=-1) + 1)
        for name, index in table.items():
            names[int(index)] = str(name)
        out[attribute] = tuple(names)
    return out


def attributes(example: dict, names: dict) -> dict:
    """One ``emoset`` example -> the attribute strings of :func:`data.captions` (None: absent)."""

    def name(key):
        return _words(_text(example[f"{key}_name"])) or None

    objects = [_words(names["object"][int(i)]) for i in np.asarray(example["object"])]
    return {
        "scene": name("scene"),
        "subjects": join_names(objects) if objects else None,
        "brightness": name("brightness"),
        "saturation": name("colorfulness"),
        "expression": name("facial_expression"),
        "action": name("human_action"),
        "emotion": _words(names["emotion"][int(example["emotion"])]),
    }


def load_tokenizer(path: str):
    """The CLIP tokenizer of a local Hugging Face folder (``local_files_only``: no download)."""
    if not path:
        raise ValueError(
            "model.teacher.tokenizer is empty: config.data.source='emoset' tokenises its "
            f"captions with the teacher's CLIP tokenizer; {TOKENIZER_HINT}"
        )
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"model.teacher.tokenizer={path!r} is not a folder; {TOKENIZER_HINT}"
        )
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(path, local_files_only=True)


def tokenize(tokenizer, texts, length: int) -> np.ndarray:
    """``N`` texts -> ``[N, length]`` int32 CLIP ids (BOS ... EOS, truncated so that EOS stays
    last, then zero-padded). Id 0 is padding: the prompt table attends up to the first EOS."""
    rows = tokenizer(list(texts), truncation=True, max_length=length)["input_ids"]
    out = np.zeros((len(rows), length), np.int32)
    for i, ids in enumerate(rows):
        if not ids or ids[-1] != tokenizer.eos_token_id:
            raise ValueError(f"tokenizer: {texts[i]!r} does not end with EOS: {ids}")
        out[i, : len(ids)] = ids
    return out


def check_teacher_tokenizer(tokenizer, text_config) -> None:
    """The tokenizer's ids fit the teacher's text tower and its EOS is where it pools."""
    if len(tokenizer) > text_config.vocab_size:
        raise ValueError(
            f"model.teacher.tokenizer has {len(tokenizer)} tokens, the teacher's vocab_size is "
            f"{text_config.vocab_size}: not the tokenizer of these weights (set hf_config)"
        )
    eos = tokenizer.eos_token_id
    if text_config.eos_token_id == 2:  # the original CLIP rule: pooled at the largest id
        ok = eos == max(tokenizer.get_vocab().values())
    else:
        ok = eos == text_config.eos_token_id
    if not ok:
        raise ValueError(
            f"the tokenizer's EOS id {eos} is not where the teacher pools (eos_token_id="
            f"{text_config.eos_token_id}); set model.teacher.hf_config to the CLIP config.json"
        )


class EmosetScenes:
    """Random-access source (grain) of one EmoSet split; items as the module doc."""

    def __init__(self, split: str, *, manual_dir: str, data_dir=None, image_size: int):
        if split not in SPLITS:
            raise ValueError(f"emoset: unknown split {split!r}; expected one of {SPLITS}")
        if not manual_dir:
            raise ValueError(
                "config.data.manual_dir is empty: the EmoSet-118K folder (info.json, train.json, "
                "val.json, test.json, image/, annotation/)"
            )
        self.manual_dir, self.data_dir = str(manual_dir), data_dir or None
        self.image_size = int(image_size)
        self.source = self._load(split)
        self.length = len(self.source)
        self.offset = sum(len(self._load(s)) for s in SPLITS[: SPLITS.index(split)])

    def _load(self, split):
        return emoset.load_source(split, manual_dir=self.manual_dir, data_dir=self.data_dir)

    def __len__(self) -> int:
        return self.length

    def attributes(self, index: int) -> dict:
        """The attribute strings of example ``index`` (None: absent)."""
        return attributes(self.source[int(index)], index_names(self.manual_dir))

    def __getitem__(self, index: int) -> dict:
        example = self.source[int(index)]
        return {
            "image": load_image(io.BytesIO(example["image"]), self.image_size),
            "box": np.zeros(4, np.float32),
            "label": np.int32(example["emotion"]),
            "prompt_id": np.int32(self.offset + int(index)),
        }


def caption_text(attrs: dict) -> str:
    """The caption of one example: its present attributes' sentences joined by spaces."""
    return " ".join(captions(attrs))


def all_captions(tokenizer, length: int, *, manual_dir: str, data_dir=None) -> np.ndarray:
    """``[train + validation + test, length]`` int32: every example's caption ids, prompt_id
    order (one pass over the split sources' attributes)."""
    names = index_names(manual_dir)
    texts = []
    for split in SPLITS:  # prompt_id order: each split's examples after the previous splits'
        source = emoset.load_source(split, manual_dir=manual_dir, data_dir=data_dir)
        texts += [caption_text(attributes(source[i], names)) for i in range(len(source))]
    return tokenize(tokenizer, texts, length)
