"""UniEmoX's three Methods: the CLIP teacher, the guided MAE pretraining, the downstream classifier.

Pretraining loss (REFERENCES.md "UniEmoX", the official code's objective, weights 1)::

    L = w_mae L_MAE(scene, masked patches only)
      + w_image  mean_i (1 - cos(f_i, g_i))
      + w_prompt mean_i (1 - cos(n(f_i T^T), n(g_i T^T)))

``f``: the fused feature ``ELU(Linear(LN(scene) + LN(person)))`` of the per-view features
(``decoder_embed`` of the encoder output at CLS); ``g``: the frozen CLIP teacher's image
embedding of the whole scene; ``T``: the batch's prompt text features (one row per example, from
a table computed once per prompt set when the run starts, a frozen variable).

Stages (``configs/uniemox/``, chained by ``stages_root``): ``clip_teacher`` (method
``uniemox_clip``: CLIP trained on the built-in photos and their attribute captions) ->
``pretrain`` (``uniemox``: the teacher is loaded from the first stage as frozen variables) ->
``finetune`` / ``linear_probe`` (``uniemox_classify``: ``init_from`` the pretrained encoder).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses import clip_loss
from emojax.losses.guidance import feature_alignment_loss, prompt_similarity_loss
from emojax.losses.mim import normalize_patches, patchify
from emojax.metrics import retrieval_metrics
from emojax.metrics.classification import accuracy, f1_score
from emojax.models.base import Evaluator, Method
from emojax.models.uniemox import views
from emojax.models.uniemox.model import (
    UniEmoXPretrain,
    ViTClassifier,
    decoder_config,
    vit_config,
)
from emojax.nn.clip import CLIP, CLIPConfig, CLIPTextConfig, eot_positions
from emojax.nn.mae import random_masking, sincos_2d
from emojax.nn.vit import ViTConfig

VIEWS = (("scene",), ("scene", "person"))


# -- data shared by the stages -----------------------------------------------------------------


def _sizes(d) -> dict:
    return {"train": d.num_train, "validation": d.num_validation, "test": d.num_test}


def data_source(config, split: str):
    """The split's source for any UniEmoX stage (``config.data.source``)."""
    d = config.data
    if d.source == "uniemox_scenes":
        from emojax.models.uniemox.data import SensesScenes

        return SensesScenes(split, _sizes(d), data_dir=d.data_dir or None, seed=d.data_seed)
    if d.source == "image_folder":
        from emojax.data.image_folder import load_source

        splits = d.splits if isinstance(d.splits, str) else tuple(d.splits)
        return load_source(split, d.root, image_size=int(d.image_size), splits=splits)
    if d.source == "emoset":
        from emojax.models.uniemox.emoset import EmosetScenes

        return EmosetScenes(
            split,
            manual_dir=d.manual_dir,
            data_dir=d.data_dir or None,
            image_size=int(d.image_size),
        )
    raise ValueError(
        f"config.data.source={d.source!r}: 'uniemox_scenes' (built-in), 'emoset' (EmoSet-118K, "
        "data.manual_dir) or 'image_folder' (downstream sets)"
    )


def prepare_data(config) -> None:
    if config.data.source == "uniemox_scenes":
        from emojax.data import senses

        d = config.data
        counts = {f"num_{k}": int(v) for k, v in _sizes(d).items()}
        senses.get_builder(d.data_dir or None, seed=d.data_seed, **counts)
    elif config.data.source == "emoset":
        for split in ("train", "validation", "test"):
            data_source(config, split)  # prepares the builder once (array_record)


# -- the CLIP teacher ------------------------------------------------------------------------


def clip_config(t) -> CLIPConfig:
    """The teacher's :class:`CLIPConfig` from ``config.model.teacher``: a Hugging Face
    ``config.json`` (``hf_config``, for converted weights) or the built-in sizes."""
    from emojax.models.uniemox.data import EOT, vocabulary

    if t.get("hf_config"):
        with open(t.hf_config, encoding="utf-8") as f:
            return CLIPConfig.from_dict(json.load(f))

    vision = ViTConfig(
        image_size=int(t.image_size),
        patch_size=int(t.patch_size),
        hidden_size=int(t.hidden_size),
        num_hidden_layers=int(t.num_layers),
        num_attention_heads=int(t.num_heads),
        intermediate_size=int(t.mlp_dim),
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        patch_bias=False,
        ln_pre=True,
    )
    text = CLIPTextConfig(
        vocab_size=len(vocabulary()),
        hidden_size=int(t.text_hidden_size),
        intermediate_size=int(t.text_mlp_dim),
        num_hidden_layers=int(t.text_num_layers),
        num_attention_heads=int(t.text_num_heads),
        max_position_embeddings=int(t.max_length),
        eos_token_id=EOT,
    )
    return CLIPConfig(text=text, vision=vision, projection_dim=int(t.projection_dim))


def teacher_images(images: jax.Array, image_size: int) -> jax.Array:
    """uint8 photos -> the teacher's input (CLIP normalisation, resized if its size differs)."""
    x = views.normalize(images, views.CLIP_MEAN, views.CLIP_STD)
    if x.shape[1] != image_size:
        x = jax.image.resize(x, (x.shape[0], image_size, image_size, 3), "bilinear")
    return x


class RetrievalEvaluator(Evaluator):
    """Image <-> caption retrieval over the whole split (the teacher's quality)."""

    name = "retrieval"

    def __init__(self, method):
        self.method = method

    def predict(self, model, variables, batch):
        size = self.method.teacher.vision.image_size
        image = model.apply(
            {"params": variables["params"]},
            teacher_images(batch["image"], size),
            method=CLIP.encode_image,
        )
        text = model.apply(
            {"params": variables["params"]},
            batch["caption"],
            batch["caption"] > 0,
            method=CLIP.encode_text,
        )
        return {"image": image.astype(jnp.float32), "text": text.astype(jnp.float32)}

    def compute(self, outputs, reference=None):
        image = outputs["image"] / np.linalg.norm(outputs["image"], axis=1, keepdims=True)
        text = outputs["text"] / np.linalg.norm(outputs["text"], axis=1, keepdims=True)
        metrics = retrieval_metrics(image, text, prefix="i2t_")
        metrics.update(retrieval_metrics(text, image, prefix="t2i_"))
        return metrics


class UniEmoXCLIP(Method):
    """Method ``uniemox_clip``: a CLIP trained on the photos and their attribute captions
    (the teacher for the built-in data; real runs convert Hugging Face CLIP weights instead)."""

    def __init__(self, config):
        super().__init__(config)
        self.teacher = clip_config(config.model.teacher)

    def build_model(self):
        return CLIP(self.teacher, dtype=jnp.dtype(self.config.train.compute_dtype))

    def example_batch(self, batch_size):
        size, length = self.config.data.image_size, self.config.model.teacher.max_length
        return {
            "image": jax.ShapeDtypeStruct((batch_size, size, size, 3), jnp.uint8),
            "caption": jax.ShapeDtypeStruct((batch_size, length), jnp.int32),
        }

    def init_variables(self, model, rng, batch):
        size = self.teacher.vision.image_size
        return model.init(
            rng, teacher_images(batch["image"], size), batch["caption"], batch["caption"] > 0
        )

    def loss(self, model, variables, batch, rng, *, train):
        size = self.teacher.vision.image_size
        images = batch["image"]
        if train and self.config.model.get("flip", True):
            images = views.random_flip(self.rngs(rng)["augment"], images)
        out = model.apply(
            {"params": variables["params"]},
            teacher_images(images, size),
            batch["caption"],
            batch["caption"] > 0,
            train=train,
        )
        loss = clip_loss(out["image_embeds"], out["text_embeds"], out["logit_scale"])
        return loss, ({"clip": loss, "scale": jnp.exp(out["logit_scale"])}, {})

    rng_streams = ("dropout", "augment")

    def evaluators(self, split):
        return [RetrievalEvaluator(self)]

    def data_source(self, split):
        return data_source(self.config, split)

    def prepare_data(self):
        prepare_data(self.config)


# -- pretraining -----------------------------------------------------------------------------


def prompt_table(clip: CLIP, params, captions: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The teacher's L2-normalised text features of every caption, ``[N, dim]`` float32,
    computed once (jitted, in batches)."""

    @jax.jit
    def encode(ids):
        text = clip.apply({"params": params}, ids, text_mask(ids, clip), method=CLIP.encode_text)
        return text / jnp.linalg.norm(text, axis=-1, keepdims=True)

    rows = []
    for start in range(0, len(captions), batch_size):
        chunk = captions[start : start + batch_size]
        pad = batch_size - len(chunk)
        ids = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk
        rows.append(np.asarray(encode(jnp.asarray(ids)))[: len(chunk)])
    return np.concatenate(rows).astype(np.float32)


def text_mask(ids: jax.Array, clip: CLIP) -> jax.Array:
    """``[N, L]`` bool: the positions up to each row's first EOS (where the text tower pools).

    Not ``ids > 0``: id 0 is a real token for Hugging Face CLIP ("!"); for the built-in
    vocabulary (0 = padding after EOT) both masks are the same."""
    eos = eot_positions(ids, clip.config.text.eos_token_id)
    return jnp.arange(ids.shape[1])[None, :] <= eos[:, None]


def prompt_captions(config, text_config) -> np.ndarray:
    """Every example's caption ids of ``config.data.source``, prompt_id order ``[N, L]``."""
    d = config.data
    if d.source == "uniemox_scenes":
        from emojax.models.uniemox.data import all_captions

        return all_captions(_sizes(d), data_dir=d.data_dir or None, seed=d.data_seed)
    if d.source == "emoset":
        from emojax.models.uniemox import emoset

        tokenizer = emoset.load_tokenizer(config.model.teacher.get("tokenizer", ""))
        emoset.check_teacher_tokenizer(tokenizer, text_config)
        return emoset.all_captions(
            tokenizer,
            text_config.max_position_embeddings,
            manual_dir=d.manual_dir,
            data_dir=d.data_dir or None,
        )
    raise NotImplementedError(
        f"uniemox: no prompt table for config.data.source={d.source!r}; 'uniemox_scenes' or "
        "'emoset' (pretraining needs the attribute captions)"
    )


def read_teacher(path: str, read_checkpoint) -> dict:
    """The teacher's CLIP params: a ``clip_teacher`` run (workdir) or the safetensors file of
    ``emojax convert --model=clip`` (converted Hugging Face weights)."""
    if str(path).endswith(".safetensors"):
        from emojax.convert import load_flax_params

        variables = load_flax_params(path)
        return variables.get("params", variables)
    return read_checkpoint(path, "params")


def mae_target(images: jax.Array, patch_size: int, norm_pix: bool) -> jax.Array:
    """The MAE target ``[batch, patches, p*p*3]`` of normalised images (per-patch standardised
    when ``norm_pix``)."""
    target = patchify(images, patch_size)
    return normalize_patches(target) if norm_pix else target


def per_example_mae(pred, target, mask) -> jax.Array:
    """``[batch]``: mean over each example's masked patches of the per-patch MSE."""
    per_patch = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
    return jnp.sum(per_patch * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)


class UniEmoX(Method):
    """Method ``uniemox``: MAE + scene/person views + semantic guidance from a frozen CLIP."""

    rng_streams = ("dropout", "masking", "person", "augment")

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.views = tuple(m.views)
        if self.views not in VIEWS:
            raise ValueError(f"model.views={self.views!r}; one of {VIEWS}")
        self.encoder = vit_config(m.encoder)
        self.decoder = decoder_config(m.decoder)
        self.guided = float(m.w_image) > 0 or float(m.w_prompt) > 0
        if self.guided:
            self.teacher = clip_config(m.teacher)
            if self.teacher.projection_dim != self.decoder.hidden_size:
                raise ValueError(
                    f"model.decoder.hidden_size={self.decoder.hidden_size} must equal the "
                    f"teacher's projection_dim={self.teacher.projection_dim}: the view features "
                    "are compared with CLIP embeddings (UniEmoX: 512 and 512)"
                )

    def build_model(self):
        return UniEmoXPretrain(
            self.encoder,
            self.decoder,
            dtype=jnp.dtype(self.config.train.compute_dtype),
            remat=bool(self.config.model.get("remat", False)),
        )

    def example_batch(self, batch_size):
        size = self.config.data.image_size
        return {
            "image": jax.ShapeDtypeStruct((batch_size, size, size, 3), jnp.uint8),
            "box": jax.ShapeDtypeStruct((batch_size, 4), jnp.float32),
            "prompt_id": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        }

    def init_variables(self, model, rng, batch):
        scene, person, masks = self.prepare_views(batch, jax.random.key(0), train=False)
        variables = model.init(rng, scene, masks[0], person, masks[1])
        if not self.config.model.get("fixed_pos_embedding", True):
            return variables
        grid = self.encoder.image_size // self.encoder.patch_size
        params = dict(variables["params"])
        for name in ("encoder", "decoder"):  # MAE's fixed sin-cos tables (not trained)
            tower = dict(params[name])
            box = tower["pos_embedding"]
            table = sincos_2d(grid, box.value.shape[-1])[None]
            tower["pos_embedding"] = box.replace_boxed(table)
            params[name] = tower
        return {**variables, "params": params}

    def trainable(self, params):
        fixed = self.config.model.get("fixed_pos_embedding", True)
        return jax.tree_util.tree_map_with_path(
            lambda path, _: not (fixed and "pos_embedding" in jax.tree_util.keystr(path)), params
        )

    # -- frozen teacher and prompt table -------------------------------------------------------

    def init_frozen(self, rng, read_checkpoint):
        if not self.guided:
            return {}
        if not self.config.model.teacher.path:
            raise ValueError(
                "model.teacher.path is empty: the guidance needs a CLIP teacher (a clip_teacher "
                "workdir or converted weights); or set model.w_image=model.w_prompt=0 (MAE only)"
            )
        captions = prompt_captions(self.config, self.teacher.text)  # errors before the weights
        params = read_teacher(self.config.model.teacher.path, read_checkpoint)
        table = prompt_table(CLIP(self.teacher), params, captions)
        return {"teacher": params, "prompts": table}

    # -- views and objective -------------------------------------------------------------------

    def prepare_views(self, batch, rng, *, train: bool):
        """Normalised scene and person views and their maskings ``((keep, restore), ...)``."""
        m, size = self.config.model, self.encoder.image_size
        keys = self.rngs(rng)
        images, boxes = batch["image"], batch["box"]
        if train and m.get("flip", True):
            images, boxes = views.random_flip(keys["augment"], images, boxes)
        mean, std = tuple(m.image_mean), tuple(m.image_std)
        scene = views.normalize(images, mean, std)
        if scene.shape[1] != size:
            scene = jax.image.resize(scene, (scene.shape[0], size, size, 3), "bilinear")
        batch_size, patches = scene.shape[0], self.encoder.num_patches
        k_scene, k_person = jax.random.split(keys["masking"])
        keep, mask, restore = random_masking(k_scene, batch_size, patches, float(m.mask_ratio))
        masks = [(keep, restore, mask)]
        person = None
        if "person" in self.views:
            boxes = views.person_boxes(keys["person"], boxes, m.person_fallback)
            person = views.normalize(views.crop_resize(images, boxes, size), mean, std)
            p_keep, p_mask, p_restore = random_masking(
                k_person, batch_size, patches, float(m.person_mask_ratio)
            )
            masks.append((p_keep, p_restore, p_mask))
        else:
            masks.append(None)
        return scene, person, masks

    def terms(self, model, variables, batch, rng, *, train: bool) -> dict:
        """Per-example loss terms ``{name: [batch]}`` (mae, and image / prompt when guided)."""
        m = self.config.model
        scene, person, masks = self.prepare_views(batch, rng, train=train)
        out = model.apply(
            {"params": variables["params"]},
            scene,
            masks[0][:2],
            person,
            None if masks[1] is None else masks[1][:2],
            train=train,
            rngs={"dropout": self.rngs(rng)["dropout"]},
        )
        target = mae_target(scene, self.encoder.patch_size, bool(m.norm_pix))
        terms = {"mae": per_example_mae(out["pred"], target, masks[0][2])}
        if self.guided:
            frozen = variables["frozen"]
            g = CLIP(self.teacher).apply(
                {"params": frozen["teacher"]},
                teacher_images(batch["image"], self.teacher.vision.image_size),
                method=CLIP.encode_image,
            )
            text = jnp.take(frozen["prompts"], batch["prompt_id"], axis=0)
            terms["image"] = feature_alignment_loss(out["fused"], g)
            terms["prompt"] = prompt_similarity_loss(out["fused"], g, text)
        return terms

    def loss(self, model, variables, batch, rng, *, train):
        m = self.config.model
        terms = self.terms(model, variables, batch, rng, train=train)
        # every example masks the same number of patches: the mean of the per-example MAE is
        # mae_loss's mean over all masked patches of the batch
        means = {k: jnp.mean(v) for k, v in terms.items()}
        total = float(m.w_mae) * means["mae"]
        if self.guided:
            total = total + float(m.w_image) * means["image"] + float(m.w_prompt) * means["prompt"]
        return total, ({f"loss_{k}": v for k, v in means.items()}, {})

    def eval_metrics(self, model, variables, batch):
        terms = self.terms(model, variables, batch, jax.random.key(0), train=False)
        return {f"loss_{k}": v for k, v in terms.items()}

    def data_source(self, split):
        return data_source(self.config, split)

    def prepare_data(self):
        prepare_data(self.config)


# -- downstream ------------------------------------------------------------------------------


class ClassifyEvaluator(Evaluator):
    """Top-1 accuracy and macro / weighted F1 over the whole split."""

    name = "classify"

    def __init__(self, method):
        self.method = method

    def predict(self, model, variables, batch):
        logits = model.apply({"params": variables["params"]}, self.method.inputs(batch))
        return {"pred": jnp.argmax(logits, axis=-1), "label": batch["label"]}

    def compute(self, outputs, reference=None):
        y, p = outputs["label"], outputs["pred"]
        k = self.method.config.model.num_classes
        return {
            "top1": accuracy(y, p),
            "f1_macro": f1_score(y, p, k, average="macro"),
            "f1_weighted": f1_score(y, p, k, average="weighted"),
        }


class UniEmoXClassifier(Method):
    """Method ``uniemox_classify``: fine-tuning (all weights) or a linear probe (the head only)
    of the pretrained encoder on emotion classes; cross-entropy with label smoothing."""

    rng_streams = ("dropout", "augment")

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.encoder = vit_config(m.encoder, pool=m.pool)
        if m.head_only not in (True, False):
            raise ValueError(f"model.head_only must be a bool, got {m.head_only!r}")

    def build_model(self):
        m = self.config.model
        return ViTClassifier(
            self.encoder,
            int(m.num_classes),
            probe_norm=bool(m.head_only),
            dtype=jnp.dtype(self.config.train.compute_dtype),
        )

    def example_batch(self, batch_size):
        size = self.config.data.image_size
        return {
            "image": jax.ShapeDtypeStruct((batch_size, size, size, 3), jnp.uint8),
            "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        }

    def init_variables(self, model, rng, batch):
        return model.init(rng, self.inputs(batch))

    def trainable(self, params):
        if not self.config.model.head_only:
            return jax.tree.map(lambda _: True, params)
        return {k: jax.tree.map(lambda _, k=k: k == "head", v) for k, v in params.items()}

    def inputs(self, batch, rng=None):
        """Normalised images; with ``rng``: random resized crop (``crop_scale`` (1, 1): none)
        and flip (training)."""
        m, size = self.config.model, self.encoder.image_size
        images = batch["image"]
        if rng is not None:
            keys = jax.random.split(rng)
            if tuple(m.crop_scale) == (1.0, 1.0):  # no crop: the whole photo
                boxes = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0, 1.0]), (images.shape[0], 4))
            else:
                boxes = views.random_boxes(keys[0], images.shape[0], tuple(m.crop_scale))
            images = views.random_flip(keys[1], views.crop_resize(images, boxes, size))
        elif images.shape[1] != size:
            full = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0, 1.0]), (images.shape[0], 4))
            images = views.crop_resize(images, full, size)
        return views.normalize(images, tuple(m.image_mean), tuple(m.image_std))

    def loss(self, model, variables, batch, rng, *, train):
        m = self.config.model
        keys = self.rngs(rng)
        logits = model.apply(
            {"params": variables["params"]},
            self.inputs(batch, keys["augment"] if train else None),
            train=train,
            rngs={"dropout": keys["dropout"]},
        ).astype(jnp.float32)
        k = int(m.num_classes)
        smooth = float(m.label_smoothing)
        target = jax.nn.one_hot(batch["label"], k) * (1.0 - smooth) + smooth / k
        ce = -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)
        correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return jnp.mean(ce), ({"ce": jnp.mean(ce), "accuracy": jnp.mean(correct)}, {})

    def evaluators(self, split):
        return [ClassifyEvaluator(self)]

    def data_source(self, split):
        return data_source(self.config, split)

    def prepare_data(self):
        prepare_data(self.config)
