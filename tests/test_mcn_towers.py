"""MCN towers and ResDAVEnet vs PyTorch modules of the same structure (the official
``ResDavenet`` / ``Net`` layer order and names), eval and train mode, gradients, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks.torch_mcn import TorchMCN as _TorchMCN
from benchmarks.torch_mcn import TorchResDavenet
from benchmarks.torch_mcn import randomise_bn as _randomise_bn
from emojax.convert import ConversionError, flax_to_state_dict
from emojax.convert.mcn import convert_mcn, mcn_rules
from emojax.convert.resdavenet import convert_resdavenet, resdavenet_rules
from emojax.models.mcn.model import MCNModel, parse_spaces
from emojax.nn.resdavenet import ResDAVEnet, ResDAVEnetConfig, time_mean

WIDTHS = (8, 8, 16, 16, 32)
CFG = ResDAVEnetConfig(widths=WIDTHS)
B, T, D, W, VIDEO, WORD, HIDDEN = 4, 64, 64, 6, 4096, 300, 48


def close(got, want, rtol=1e-4):
    """float32 round-off is relative to the magnitude of the whole output."""
    want = np.asarray(want)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=rtol * scale)


# -- PyTorch references: benchmarks/torch_mcn.py (shared with the training-step benchmark) ----


def TorchMCN(cfg, conv2d=False):  # noqa: N802 (a class in the shared module)
    return _TorchMCN(cfg, conv2d, embed_dim=D, video_dim=VIDEO, word_dim=WORD, recon_hidden=HIDDEN)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    video = rng.standard_normal((B, VIDEO)).astype(np.float32)
    video /= np.linalg.norm(video, axis=-1, keepdims=True)
    mel = rng.standard_normal((B, T, 40)).astype(np.float32)
    nframes = np.array([T, 40, 17, 3], np.int32)
    words = rng.standard_normal((B, W, WORD)).astype(np.float32)
    mask = np.arange(W)[None, :] < np.array([W, 4, 1, 0])[:, None]  # last row: no word
    words[~mask] = 0.0
    return {
        "video": video,
        "audio": mel,
        "audio_nframes": nframes,
        "text": words,
        "text_mask": mask,
    }


def _torch_call(ref, batch):
    return ref(
        torch.tensor(batch["video"]),
        torch.tensor(batch["audio"].transpose(0, 2, 1)),
        torch.tensor(batch["audio_nframes"]).long(),
        torch.tensor(batch["text"]),
        torch.tensor(batch["text_mask"]),
    )


def _model():
    return MCNModel(embed_dim=D, video_dim=VIDEO, word_dim=WORD, audio=CFG, recon_hidden=HIDDEN)


# -- ResDAVEnet ----------------------------------------------------------------------------------


@pytest.mark.parametrize("conv2d", [False, True], ids=["conv1d", "official_conv2d"])
def test_resdavenet_matches_torch_eval_and_train(conv2d):
    torch.manual_seed(0)
    ref = TorchResDavenet(CFG, conv2d)
    _randomise_bn(ref)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    module, variables = convert_resdavenet(ref.state_dict(), CFG)
    mel = np.random.default_rng(1).standard_normal((B, T, 40)).astype(np.float32)
    x = torch.tensor(mel.transpose(0, 2, 1))
    with torch.no_grad():
        want_eval = ref.eval()(x).numpy().transpose(0, 2, 1)
        want_train = ref.train()(x).numpy().transpose(0, 2, 1)
    assert want_eval.shape == (B, CFG.output_length(T), WIDTHS[-1]) == (B, 4, 32)
    close(jax.jit(module.apply)(variables, mel), want_eval)
    got, updates = module.apply(variables, mel, train=True, mutable=["batch_stats"])
    close(got, want_train)
    # running means move the same way (running variances differ: biased vs unbiased update)
    new = flax_to_state_dict(
        updates, [r for r in resdavenet_rules(CFG) if r.flax_path[0] == "batch_stats"]
    )
    sd = ref.state_dict()
    for name, array in new.items():
        if name.endswith("running_mean"):
            close(array, sd[name].numpy(), rtol=1e-5)
    if not conv2d:  # round trip
        back = flax_to_state_dict(variables, resdavenet_rules(CFG))
        for name, array in back.items():
            np.testing.assert_array_equal(array, before[name].numpy(), err_msg=name)


def test_resdavenet_default_sizes_and_names():
    module = ResDAVEnet()
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((2, 100, 40))))
    p = shapes["params"]
    assert p["stem"]["conv"]["kernel"].value.shape == (1, 40, 128)
    assert p["stage_3_block_0"]["layer_0"]["conv"]["kernel"].value.shape == (9, 512, 1024)
    assert p["stage_3_block_0"]["layer_0"]["conv"]["kernel"].names == (None, "conv_in", "conv_out")
    assert p["stage_0_block_0"]["shortcut"]["norm"]["scale"].names == ("conv_out",)
    assert "shortcut" not in p["stage_0_block_1"]
    assert set(shapes["batch_stats"]["stem"]["norm"]) == {"mean", "var"}
    out = jax.eval_shape(module.apply, shapes, jnp.zeros((2, 100, 40)))
    assert out.shape == (2, ResDAVEnetConfig().output_length(100), 1024) == (2, 7, 1024)


def test_time_mean_valid_frames():
    feats = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
    np.testing.assert_allclose(time_mean(feats), feats.mean(1))
    got = time_mean(feats, jnp.array([64, 5]), input_frames=64)  # ratio 16: 4 frames, then 1
    np.testing.assert_allclose(got, np.stack([feats[0].mean(0), feats[1, 0]]))
    with pytest.raises(ValueError, match="input_frames"):
        time_mean(feats, jnp.array([1, 1]))
    with pytest.raises(ValueError, match="nframes must be"):
        time_mean(feats, jnp.array([1, 1, 1]), input_frames=64)


# -- MCN towers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("conv2d", [False, True], ids=["conv1d", "official_conv2d"])
def test_mcn_towers_match_torch_eval_and_train(conv2d):
    torch.manual_seed(0)
    ref = TorchMCN(CFG, conv2d)
    _randomise_bn(ref)
    model = _model()
    variables = convert_mcn(ref.state_dict(), model)
    batch = _inputs()
    with torch.no_grad():
        want = {"eval": _torch_call(ref.eval(), batch), "train": _torch_call(ref.train(), batch)}
    got = {
        "eval": jax.jit(model.apply)(variables, batch),
        "train": model.apply(variables, batch, train=True, mutable=["batch_stats"])[0],
    }
    for mode in ("eval", "train"):
        for m in ("video", "audio", "text"):
            close(got[mode][m], want[mode][m].numpy())
            close(got[mode]["recon"][m], want[mode]["recon"][m].numpy())
            close(got[mode]["recon_targets"][m], want[mode]["recon_targets"][m].numpy())
    np.testing.assert_array_equal(np.asarray(got["eval"]["recon_targets"]["text"][-1]), 0)
    # eval pools the valid frames only: differs from the plain mean for short rows
    plain = model.apply(variables, {k: v for k, v in batch.items() if k != "audio_nframes"})
    assert not np.allclose(plain["audio"][3], got["eval"]["audio"][3])
    close(plain["audio"][0], got["eval"]["audio"][0])


def test_audio_tower_gradients_match_torch():
    torch.manual_seed(0)
    ref = TorchMCN(CFG).train()
    _randomise_bn(ref)
    model = _model()
    variables = convert_mcn(ref.state_dict(), model)
    batch = {k: v for k, v in _inputs(2).items() if k in ("audio", "audio_nframes")}
    rng = np.random.default_rng(3)
    proj = rng.standard_normal((D,)).astype(np.float32)

    def loss_fn(params):
        out, _ = model.apply(
            {**variables, "params": params}, batch, train=True, mutable=["batch_stats"]
        )
        emb = out["audio"]
        rec = jnp.mean((out["recon"]["audio"] - out["recon_targets"]["audio"]) ** 2)
        return jnp.mean(jnp.tanh(emb @ proj)) + rec

    loss, grads = jax.value_and_grad(loss_fn)(variables["params"])
    x = torch.tensor(batch["audio"].transpose(0, 2, 1))
    audio = ref.DAVEnet(x).mean(dim=2)
    emb = ref.DAVEnet_projection(ref.GU_audio(audio))
    t_loss = torch.tanh(emb @ torch.tensor(proj)).mean() + ((ref.recon_a(emb) - audio) ** 2).mean()
    t_loss.backward()
    close(loss, t_loss.item())
    rules = [r for r in mcn_rules(CFG, modalities=("audio",)) if r.flax_path[0] == "params"]
    got = flax_to_state_dict({"params": grads}, rules)
    named = dict(ref.named_parameters())
    assert len(got) == len(rules) > 50
    for name, g in got.items():
        want = named[name].grad.numpy()
        scale = max(float(np.abs(want).max()), 1e-6)
        np.testing.assert_allclose(g, want, rtol=1e-3, atol=2e-4 * scale, err_msg=name)


def test_spaces_heads_and_partial_batches():
    model = MCNModel(
        embed_dim=16,
        video_dim=24,
        word_dim=10,
        audio=CFG,
        recon_hidden=8,
        spaces=("video_audio", "video_text"),
        space_dim=6,
    )
    rng = np.random.default_rng(0)
    batch = {
        "video": rng.standard_normal((3, 24)).astype(np.float32),
        "audio": rng.standard_normal((3, 32, 40)).astype(np.float32),
        "text": rng.standard_normal((3, 5, 10)).astype(np.float32),
        "text_mask": np.ones((3, 5), bool),
    }
    variables = jax.jit(model.init)(jax.random.key(0), batch)
    params = variables["params"]
    assert {k for k in params if k.startswith("space_")} == {
        "space_video_audio_video",
        "space_video_audio_audio",
        "space_video_text_video",
        "space_video_text_text",
    }
    out = jax.jit(model.apply)(variables, batch)
    assert out["spaces"]["video_audio"]["audio"].shape == (3, 6)
    assert set(out["spaces"]["video_text"]) == {"video", "text"}
    assert out["video"].shape == out["audio"].shape == out["text"].shape == (3, 16)
    assert params["video"]["geu"]["fc"]["kernel"].value.shape == (24, 16)
    assert params["audio"]["projection"]["kernel"].value.shape == (32, 16)
    # evaluation without audio: only the present modalities come out
    vt = jax.jit(model.apply)(variables, {k: v for k, v in batch.items() if k != "audio"})
    assert set(vt["recon"]) == {"video", "text"} and set(vt["spaces"]["video_audio"]) == {"video"}
    # no reconstruction: no recon keys
    plain = MCNModel(embed_dim=16, video_dim=24, word_dim=10, audio=CFG, reconstruction=False)
    v = jax.eval_shape(plain.init, jax.random.key(0), batch)
    assert "recon" not in jax.eval_shape(plain.apply, v, batch) and not any(
        k.startswith("recon") for k in v["params"]
    )
    assert parse_spaces(("audio_text",)) == {"audio_text": ("audio", "text")}


BAD = {  # name: (batch change, error pattern)
    "video_dim": (
        lambda g: {"video": g["video"][:, :20]},
        r"batch\['video'\] must be \[batch, 24\]",
    ),
    "audio_layout": (
        lambda g: {"audio": g["audio"].transpose(0, 2, 1)},
        r"batch\['audio'\] must be \[batch, frames, 40\].*transpose",
    ),
    "word_dim": (
        lambda g: {"text": g["text"][..., :9]},
        r"batch\['text'\] must be \[batch, words, 10\]",
    ),
    "mask_shape": (
        lambda g: {"text_mask": np.ones((2, 4), bool)},
        r"batch\['text_mask'\] must be \[batch, words\] = \(2, 5\)",
    ),
    "nframes_shape": (lambda g: {"audio_nframes": np.array([1, 2, 3])}, "audio_nframes"),
    "batch_sizes": (lambda g: {"video": g["video"][:1]}, "batch sizes differ"),
}


@pytest.fixture(scope="module")
def small():
    model = MCNModel(embed_dim=8, video_dim=24, word_dim=10, audio=CFG, recon_hidden=8)
    rng = np.random.default_rng(0)
    good = {
        "video": rng.standard_normal((2, 24)).astype(np.float32),
        "audio": rng.standard_normal((2, 32, 40)).astype(np.float32),
        "audio_nframes": np.array([32, 10], np.int32),
        "text": rng.standard_normal((2, 5, 10)).astype(np.float32),
        "text_mask": np.ones((2, 5), bool),
    }
    return model, jax.jit(model.init)(jax.random.key(0), good), good


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_raise_clear_errors_eager_and_jit(small, case):
    model, variables, good = small
    change, match = BAD[case]
    batch = {**good, **change(good)}
    with pytest.raises(ValueError, match=match):
        model.apply(variables, batch)
    with pytest.raises(ValueError, match=match):
        jax.jit(model.apply)(variables, batch)  # shape checks only: they hold under jit too


def test_bad_batches_and_configs(small):
    model, variables, good = small
    with pytest.raises(ValueError, match="text_mask"):
        model.apply(variables, {k: v for k, v in good.items() if k != "text_mask"})
    with pytest.raises(ValueError, match="none of"):
        model.apply(variables, {"other": good["video"]})
    for spaces in (("video_sound",), ("video",), ("video_video",), ("video_audio", "video_audio")):
        with pytest.raises(ValueError, match="spaces entry"):
            jax.eval_shape(
                MCNModel(embed_dim=8, video_dim=24, word_dim=10, audio=CFG, spaces=spaces).init,
                jax.random.key(0),
                good,
            )
    with pytest.raises(ValueError, match="one entry more"):
        ResDAVEnetConfig(widths=(8, 8), depths=(1, 1))
    with pytest.raises(ValueError, match="kernel=8 must be odd"):
        ResDAVEnetConfig(kernel=8)
    with pytest.raises(ValueError, match=r"\[batch, frames, 40\]"):
        jax.eval_shape(ResDAVEnet(CFG).init, jax.random.key(0), jnp.zeros((2, 40, 33)))


def test_converter_reports_mismatched_sizes_and_bf16_compute(small):
    torch.manual_seed(0)
    ref = TorchResDavenet(CFG)
    with pytest.raises(ConversionError, match="mis-shaped: layer4.0.conv1.weight"):
        convert_resdavenet(ref.state_dict(), ResDAVEnetConfig(widths=(8, 8, 16, 16, 48)))
    model, variables, good = small
    bf16 = MCNModel(
        embed_dim=8, video_dim=24, word_dim=10, audio=CFG, recon_hidden=8, dtype=jnp.bfloat16
    )
    out = jax.eval_shape(bf16.apply, variables, good)
    assert out["video"].dtype == out["text"].dtype == jnp.bfloat16
    assert out["recon_targets"]["audio"].dtype == jnp.float32  # pooled in float32
