"""CLIP two-tower vs transformers.CLIPModel (random-init small config)."""

import jax
import numpy as np
import pytest
import torch
import transformers

from emojax.convert import flax_to_state_dict
from emojax.convert.clip import clip_rules, convert_clip
from emojax.nn.clip import CLIP, CLIPConfig, eot_positions

TEXT = dict(
    vocab_size=60,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=16,
)
VISION = dict(
    image_size=32,
    patch_size=8,
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
)


def _hf(eos_token_id):
    torch.manual_seed(0)
    hf_config = transformers.CLIPConfig(
        text_config=TEXT | {"eos_token_id": eos_token_id, "bos_token_id": 1, "pad_token_id": 0},
        vision_config=VISION,
        projection_dim=24,
    )
    hf_config._attn_implementation = "eager"
    return hf_config, transformers.CLIPModel(hf_config).eval()


def _inputs(eos):
    rng = np.random.RandomState(0)
    ids = rng.randint(3, 50, size=(3, 10))
    ids[:, 0] = 1
    lengths = [10, 6, 4]
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, n - 1] = eos
        ids[row, n:] = 0
        mask[row, :n] = 1
    images = rng.randn(2, 3, 32, 32).astype(np.float32)
    return ids, mask, images


@pytest.mark.parametrize("eos", [59, 2])
def test_clip_matches_transformers_clip_model(eos):
    hf_config, hf = _hf(eos)
    config = CLIPConfig.from_dict(hf_config.to_dict())
    assert config.vision.ln_pre and not config.vision.patch_bias
    module, variables = convert_clip(hf.state_dict(), config)
    ids, mask, images = _inputs(59 if eos == 59 else 55)
    if eos == 2:  # old configs: EOT = the largest id in the row
        ids[ids == 55] = 59
    with torch.no_grad():
        ref = hf(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            pixel_values=torch.tensor(images),
        )
    out = jax.jit(module.apply)(variables, images.transpose(0, 2, 3, 1), ids, mask)
    for ours, theirs in [
        ("image_embeds", "image_embeds"),
        ("text_embeds", "text_embeds"),
        ("logits_per_image", "logits_per_image"),
    ]:
        want = getattr(ref, theirs).numpy()
        # logits_per_image is scaled by exp(logit_scale) ~ 14: the atol follows the magnitude
        np.testing.assert_allclose(
            np.asarray(out[ours]),
            want,
            atol=2e-5 * max(1.0, np.abs(want).max()),
            rtol=1e-5,
            err_msg=ours,
        )
    np.testing.assert_allclose(float(out["logit_scale"]), hf.logit_scale.item(), rtol=1e-7)
    back = flax_to_state_dict(variables["params"], clip_rules(config))
    sd = hf.state_dict()
    for name, array in back.items():
        np.testing.assert_array_equal(array, sd[name].numpy(), err_msg=name)


def test_eot_positions_and_bad_input():
    ids = np.array([[1, 5, 9, 0], [1, 9, 0, 0]])
    np.testing.assert_array_equal(eot_positions(ids, 9), [2, 1])
    np.testing.assert_array_equal(eot_positions(ids, 2), [2, 1])
    hf_config, hf = _hf(59)
    module, variables = convert_clip(hf.state_dict(), CLIPConfig.from_dict(hf_config.to_dict()))
    with pytest.raises(ValueError, match="length <= 16"):
        module.apply(variables, np.zeros((1, 17), np.int32), method=CLIP.encode_text)
    with pytest.raises(ValueError, match=r"input_ids values must be in \[0, 60\)"):
        module.apply(variables, np.full((1, 4), 60, np.int32), method=CLIP.encode_text)
