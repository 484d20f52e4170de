"""UniEmoX: one pretraining step, emojax (jit, donated) vs the same model in PyTorch eager.

    python -m benchmarks.uniemox [--quick] [--json PATH]

The step: MAE on the scene view (ViT-S/16 encoder on the visible 25 % of the patches at 224 px,
MAE's decoder 512 x 8 predicting every patch, the loss on the masked ones, per-patch normalised
targets), the person view through the same encoder, the fusion ``ELU(Linear(LN(s) + LN(p)))``, a
frozen CLIP ViT-B/16 image tower as the teacher, the two guidance losses against a prompt table
of the batch's rows, AdamW; batch 16 (``--quick``: :data:`QUICK`). emojax:
:class:`emojax.models.uniemox.model.UniEmoXPretrain`, :class:`emojax.nn.CLIP` and
:mod:`emojax.losses.guidance` in one ``jax.jit`` step (state donated; compile not timed).
PyTorch: :mod:`benchmarks.torch_uniemox` (Hugging Face ``ViTMAEForPreTraining`` and
``CLIPModel``, ``torch.optim.AdamW``). Both start from the same weights (the torch modules'
state_dicts converted here), the same views, masking noise and text table: the losses of their
first two steps are printed side by side (and compared by the ``--quick`` test) before the
timing. Section ``bf16_mfu``: the emojax step alone at ViT-B/16, batch 128, bfloat16, cuDNN
attention on GPU, as MFU (:func:`mfu_section`; skipped on CPU unless ``--quick``).
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    Row,
    first_two_steps,
    interleaved_ms,
    report_train_step,
    run_sections,
    step_extra,
    time_ms,
)

TITLE = "uniemox: one pretraining step (two views + guidance) vs PyTorch eager"
LR, WEIGHT_DECAY = 1e-4, 0.05


@dataclasses.dataclass(frozen=True)
class Size:
    batch: int = 16
    image: int = 224
    patch: int = 16
    enc: tuple = (384, 12, 6)  # width, blocks, heads (ViT-S)
    dec: tuple = (512, 8, 16)  # MAE's decoder
    teacher: tuple = (768, 12, 12)  # CLIP ViT-B/16 image tower
    mask_ratio: float = 0.75

    def describe(self) -> str:
        return (
            f"batch {self.batch}, {self.image} px / patch {self.patch}, encoder {self.enc}, "
            f"decoder {self.dec}, teacher {self.teacher}, mask {self.mask_ratio}"
        )


QUICK = Size(batch=4, image=32, patch=8, enc=(64, 2, 2), dec=(32, 1, 2), teacher=(48, 1, 2))


def torch_models(size: Size):
    """(student TorchUniEmoX, HF CLIPModel) with seeded random weights."""
    import torch
    from transformers import CLIPConfig, CLIPModel, ViTMAEConfig, ViTMAEForPreTraining

    from benchmarks.torch_uniemox import TorchUniEmoX

    (w, n, h), (dw, dn, dh), (tw, tn, th) = size.enc, size.dec, size.teacher
    torch.manual_seed(0)
    mae = ViTMAEForPreTraining(
        ViTMAEConfig(
            image_size=size.image, patch_size=size.patch, hidden_size=w, num_hidden_layers=n,
            num_attention_heads=h, intermediate_size=4 * w, decoder_hidden_size=dw,
            decoder_num_hidden_layers=dn, decoder_num_attention_heads=dh,
            decoder_intermediate_size=4 * dw, mask_ratio=size.mask_ratio, norm_pix_loss=True,
            layer_norm_eps=1e-6, attn_implementation="sdpa",
        )
    )  # fmt: skip
    student = TorchUniEmoX(mae, dw)
    clip = CLIPModel(
        CLIPConfig(
            vision_config=dict(
                image_size=size.image, patch_size=size.patch, hidden_size=tw,
                num_hidden_layers=tn, num_attention_heads=th, intermediate_size=4 * tw,
            ),
            text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64),
            projection_dim=dw,
        )
    )  # fmt: skip
    return student, clip


def convert_student(state_dict: dict, model, size: Size) -> dict:
    """``TorchUniEmoX`` state_dict -> params of :class:`UniEmoXPretrain`."""
    from emojax.convert.core import (
        Rule,
        block_rules,
        linear_rules,
        norm_rules,
        state_dict_to_flax,
    )
    from emojax.convert.vit import VIT_BLOCK, vit_rules

    rules = [
        Rule(r.torch_name, ("encoder", *r.flax_path), r.transform)
        for r in vit_rules(model.encoder_config, prefix="mae.vit.")
    ]
    d = "mae.decoder."
    rules += [
        Rule(f"{d}mask_token", ("decoder", "mask_token")),
        Rule(f"{d}decoder_pos_embed", ("decoder", "pos_embedding")),
        *linear_rules(f"{d}decoder_embed", ("decoder", "decoder_embed")),
        *norm_rules(f"{d}decoder_norm", ("decoder", "norm")),
        *linear_rules(f"{d}decoder_pred", ("decoder", "pred")),
        *norm_rules("fusion_norm", ("fusion_norm",)),
        *linear_rules("fusion", ("fusion",)),
    ]
    for i in range(size.dec[1]):
        rules += block_rules(
            f"{d}decoder_layers.{i}", ("decoder", "blocks", f"layer_{i}"), VIT_BLOCK
        )
    return state_dict_to_flax(state_dict, rules, expected=None, context="UniEmoX student") | {}


def inputs(size: Size, seed: int = 0) -> dict:
    """NHWC views (scene, person = a centre crop resized), teacher input, noise, text table."""
    rng = np.random.default_rng(seed)
    s, b = size.image, size.batch
    scene = rng.normal(size=(b, s, s, 3)).astype(np.float32)
    lo, hi = s // 4, s - s // 4
    crop = scene[:, lo:hi, lo:hi]
    person = np.repeat(np.repeat(crop, 2, axis=1), 2, axis=2)[:, :s, :s]
    patches = (s // size.patch) ** 2
    return {
        "scene": scene,
        "person": np.ascontiguousarray(person),
        "teacher": rng.normal(size=(b, s, s, 3)).astype(np.float32),
        "scene_noise": rng.random((b, patches)).astype(np.float32),
        "person_noise": rng.random((b, patches)).astype(np.float32),
        "text": rng.normal(size=(b, size.dec[0])).astype(np.float32),
    }


def masking_from_noise(noise: jax.Array, mask_ratio: float):
    """MAE's masking (as :func:`emojax.nn.mae.random_masking`) from given noise [batch, patches]."""
    keep_count = max(1, int(round(noise.shape[1] * (1.0 - mask_ratio))))
    shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
    restore = jnp.argsort(shuffle, axis=1).astype(jnp.int32)
    return shuffle[:, :keep_count], restore, (restore >= keep_count).astype(jnp.float32)


def emojax_step(model, clip, size: Size, tx):
    """The jitted step ``(state, batch) -> (state, (loss, parts))`` (state donated)."""
    import optax

    from emojax.losses.guidance import feature_alignment_loss, prompt_similarity_loss
    from emojax.models.uniemox.method import mae_target, per_example_mae
    from emojax.nn.clip import CLIP

    def loss_fn(params, teacher, batch):
        keep, restore, mask = masking_from_noise(batch["scene_noise"], size.mask_ratio)
        p_keep, p_restore, _ = masking_from_noise(batch["person_noise"], size.mask_ratio)
        out = model.apply(
            {"params": params}, batch["scene"], (keep, restore), batch["person"],
            (p_keep, p_restore), train=True,
        )  # fmt: skip
        mae = jnp.mean(
            per_example_mae(out["pred"], mae_target(batch["scene"], size.patch, True), mask)
        )
        g = clip.apply({"params": teacher}, batch["teacher"], method=CLIP.encode_image)
        image = jnp.mean(feature_alignment_loss(out["fused"], g))
        prompt = jnp.mean(prompt_similarity_loss(out["fused"], g, batch["text"]))
        return mae + image + prompt, {"mae": mae, "image": image, "prompt": prompt}

    def step(state, teacher, batch):
        params, opt_state = state
        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, teacher, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss, parts)

    return jax.jit(step, donate_argnums=(0,))


def train_step_section(quick: bool) -> dict:
    import optax
    import torch

    from benchmarks.torch_uniemox import TorchUniEmoXTrainer
    from emojax.convert.clip import convert_clip
    from emojax.models.uniemox.model import UniEmoXPretrain
    from emojax.nn.clip import CLIPConfig
    from emojax.nn.mae import MAEDecoderConfig
    from emojax.nn.vit import ViTConfig

    size = QUICK if quick else Size()
    student, hf_clip = torch_models(size)
    (w, n, h), (dw, dn, dh) = size.enc, size.dec
    model = UniEmoXPretrain(
        ViTConfig(
            image_size=size.image, patch_size=size.patch, hidden_size=w, num_hidden_layers=n,
            num_attention_heads=h, intermediate_size=4 * w, layer_norm_eps=1e-6,
        ),
        MAEDecoderConfig(hidden_size=dw, num_hidden_layers=dn, num_attention_heads=dh,
                         intermediate_size=4 * dw),
    )  # fmt: skip
    params = convert_student(student.state_dict(), model, size)
    clip, clip_vars = convert_clip(
        hf_clip.state_dict(), CLIPConfig.from_dict(hf_clip.config.to_dict())
    )
    # MAE's (and ViTMAE's) position embeddings are fixed sin-cos tables: not trained
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "fixed" if "pos_embedding" in jax.tree_util.keystr(path) else "train",
        params,
    )
    adamw = optax.adamw(LR, b1=0.9, b2=0.95, eps=1e-8, weight_decay=WEIGHT_DECAY)
    tx = optax.multi_transform({"train": adamw, "fixed": optax.set_to_zero()}, labels)
    state = {"s": (params, tx.init(params))}
    data = inputs(size)
    batch = {k: jnp.asarray(v) for k, v in data.items()}
    teacher = clip_vars["params"]
    step = emojax_step(model, clip, size, tx)
    start = time.perf_counter()
    compiled = step.lower(state["s"], teacher, batch).compile()
    compile_s = time.perf_counter() - start
    trainer = TorchUniEmoXTrainer(student, hf_clip, LR, WEIGHT_DECAY)
    nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
    t_in = {k: nchw(data[k]) for k in ("scene", "person", "teacher")}
    t_in |= {k: torch.from_numpy(data[k]) for k in ("scene_noise", "person_noise", "text")}

    def run_emojax():
        state["s"], out = compiled(state["s"], teacher, batch)
        return out

    def run_torch():
        return trainer.step(t_in)

    losses, parts = first_two_steps({"emojax": run_emojax, "torch": run_torch})
    ms = interleaved_ms({"emojax": run_emojax, "torch": run_torch}, rounds=2 if quick else 3)
    name = f"UniEmoX pretrain step b={size.batch} (2 views + guidance + AdamW)"
    row = Row(name, ms["emojax"], ms["torch"], extra=step_extra(compiled, compile_s, ms))
    title = f"{TITLE} (torch threads {torch.get_num_threads()})"
    return report_train_step(title, row, size, losses, parts, compile_s)


MFU_SIZE = Size(batch=128, enc=(768, 12, 12))  # ViT-B/16; 128 per chip = the paper's 4096 / 32
MFU_QUICK = dataclasses.replace(QUICK, batch=8)


def mfu_section(quick: bool) -> dict:
    """MFU of the emojax step alone (no peer) in bfloat16 compute, float32 params: ViT-B/16
    encoder, MAE decoder, CLIP ViT-B/16 teacher, batch 128, cuDNN fused attention on GPU.

    MFU = XLA's FLOP count of the compiled step x steps/s / the chip's peak
    (:func:`emojax.train.observe.peak_flops`). Skipped on CPU at full size (no peak to divide
    by, and minutes per step); ``--quick`` runs the tiny model so the code path is tested."""
    import optax

    from emojax.models.uniemox.model import UniEmoXPretrain
    from emojax.nn.clip import CLIP, CLIPConfig, CLIPTextConfig
    from emojax.nn.mae import MAEDecoderConfig
    from emojax.nn.vit import ViTConfig
    from emojax.train.observe import compiled_flops, peak_flops

    device = jax.devices()[0]
    peak = peak_flops(device)
    if not quick and jax.default_backend() == "cpu":
        reason = "no accelerator (CPU): run on a GPU/TPU; --quick runs the code path"
        print(f"uniemox bf16 MFU: skipped, {reason}")
        return {"skipped": reason}
    size = MFU_QUICK if quick else MFU_SIZE
    attention = "cudnn" if jax.default_backend() == "gpu" else "xla"
    (w, n, h), (dw, dn, dh), (tw, tn, th) = size.enc, size.dec, size.teacher
    vit = dict(image_size=size.image, patch_size=size.patch, layer_norm_eps=1e-6)
    model = UniEmoXPretrain(
        ViTConfig(**vit, hidden_size=w, num_hidden_layers=n, num_attention_heads=h,
                  intermediate_size=4 * w, attention_impl=attention),
        MAEDecoderConfig(hidden_size=dw, num_hidden_layers=dn, num_attention_heads=dh,
                         intermediate_size=4 * dw, attention_impl=attention),
        dtype=jnp.bfloat16,
    )  # fmt: skip
    clip = CLIP(
        CLIPConfig(
            text=CLIPTextConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=1, num_attention_heads=2),
            vision=ViTConfig(**vit, hidden_size=tw, num_hidden_layers=tn, num_attention_heads=th,
                             intermediate_size=4 * tw, hidden_act="quick_gelu", patch_bias=False,
                             ln_pre=True, pool="cls", attention_impl=attention),
            projection_dim=dw,
        ),
        dtype=jnp.bfloat16,
    )  # fmt: skip
    batch = {k: jnp.asarray(v) for k, v in inputs(size).items()}
    keep, restore, _ = masking_from_noise(batch["scene_noise"], size.mask_ratio)
    p_keep, p_restore, _ = masking_from_noise(batch["person_noise"], size.mask_ratio)
    args = (batch["scene"], (keep, restore), batch["person"], (p_keep, p_restore))
    params = jax.jit(lambda k: model.init(k, *args)["params"])(jax.random.key(0))
    ids = jnp.ones((1, 4), jnp.int32)
    teacher = jax.jit(lambda k: clip.init(k, batch["teacher"][:1], ids, ids > 0)["params"])(
        jax.random.key(1)
    )
    tx = optax.adamw(LR, b1=0.9, b2=0.95, weight_decay=WEIGHT_DECAY)
    state = {"s": (params, jax.jit(tx.init)(params))}
    start = time.perf_counter()
    compiled = emojax_step(model, clip, size, tx).lower(state["s"], teacher, batch).compile()
    compile_s = time.perf_counter() - start
    flops = compiled_flops(compiled)

    def run():
        state["s"], out = compiled(state["s"], teacher, batch)
        return out

    ms = time_ms(run, repeats=3 if quick else 10, warmup=2)
    loss = float(run()[0])
    mfu = None if (flops is None or peak is None) else flops * (1e3 / ms) / peak
    name = f"UniEmoX pretrain step bf16 b={size.batch} ({attention} attention)"
    shown = "n/a (unknown peak)" if mfu is None else f"{100 * mfu:.1f}%"
    tflops = None if flops is None else flops * (1e3 / ms) / 1e12
    print(f"{name}: {ms:.1f} ms, MFU {shown}, {tflops} TFLOP/s on {device.device_kind}")
    print(f"sizes: {size.describe()}")
    return {
        "name": name,
        "device": device.device_kind,
        "ms": ms,
        "compile_s": round(compile_s, 1),
        "flops_per_step": flops,
        "tflops_per_s": tflops,
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": mfu,
        "loss": loss,
        "finite": math.isfinite(loss),
        "size": dataclasses.asdict(size),
    }


def main(argv: list[str] | None = None) -> dict:
    sections = {"train_step": train_step_section, "bf16_mfu": mfu_section}
    return run_sections(TITLE, sections, argv)


if __name__ == "__main__":
    main()
