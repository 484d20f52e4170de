"""ViT parity vs transformers.ViTModel, MAE-style visible-patch encoding, and sharding over an
fsdp x tensor mesh of 8 fake devices."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from emojax.convert import flax_to_state_dict, unbox
from emojax.convert.vit import convert_vit, vit_rules
from emojax.nn.vit import ViT, ViTConfig
from emojax.parallel.axes import LOGICAL_AXIS_RULES

SMALL = dict(
    image_size=32,
    patch_size=8,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
)


@pytest.fixture(scope="module")
def converted():
    torch.manual_seed(0)
    hf_config = transformers.ViTConfig(**SMALL, attn_implementation="eager")
    hf = transformers.ViTModel(hf_config).eval()
    config = ViTConfig.from_dict(hf_config.to_dict())
    module, variables = convert_vit(hf.state_dict(), config)
    images = np.random.RandomState(0).randn(4, 3, 32, 32).astype(np.float32)
    with torch.no_grad():
        ref = hf(pixel_values=torch.tensor(images))
    return hf, module, variables, images.transpose(0, 2, 3, 1), ref


def test_vit_matches_transformers_vit_model(converted):
    _, module, variables, images, ref = converted
    hidden = jax.jit(module.apply)(variables, images)
    np.testing.assert_allclose(
        np.asarray(hidden), ref.last_hidden_state.numpy(), atol=5e-5, rtol=1e-5
    )
    remat = ViT(module.config, with_pooler=True, remat=True)
    np.testing.assert_allclose(
        jax.jit(remat.apply)(variables, images), hidden, atol=1e-5, rtol=1e-5
    )
    pooled = module.apply(variables, hidden, method=ViT.pooled)
    np.testing.assert_allclose(np.asarray(pooled), ref.pooler_output.numpy(), atol=5e-5, rtol=1e-5)


def test_vit_params_round_trip_to_torch(converted):
    hf, module, variables, _, _ = converted
    back = flax_to_state_dict(variables["params"], vit_rules(module.config, with_pooler=True))
    sd = hf.state_dict()
    assert set(back) == set(sd)
    for name, array in back.items():
        np.testing.assert_array_equal(array, sd[name].numpy(), err_msg=name)


def test_legacy_checkpoint_names_convert_to_the_same_params(converted):
    hf, module, variables, _, _ = converted
    legacy_names = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    legacy = {}
    for name, tensor in hf.state_dict().items():
        if name.startswith("layers."):
            name = "encoder.layer." + name[len("layers.") :]
            for new, old in legacy_names.items():
                name = name.replace(f".{new}.", f".{old}.")
        legacy[name] = tensor
    _, again = convert_vit(legacy, module.config)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_keep_indices_encode_only_visible_patches(converted):
    _, module, variables, images, _ = converted
    full = module.apply(variables, images)
    keep = jnp.array([[0, 5, 9], [15, 2, 3], [1, 2, 3], [4, 8, 12]])
    assert module.apply(variables, images, keep_indices=keep).shape == (4, 4, 64)
    # attention without a mask is permutation-equivariant: keeping every patch in a shuffled
    # order gives the same CLS state and the patch states in that order
    perm = jnp.stack([jax.random.permutation(jax.random.key(i), 16) for i in range(4)])
    shuffled = module.apply(variables, images, keep_indices=perm)
    np.testing.assert_allclose(shuffled[:, 0], full[:, 0], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(
        shuffled[:, 1:], jnp.take_along_axis(full[:, 1:], perm[..., None], 1), atol=2e-5, rtol=1e-5
    )  # the shuffled order changes the attention sums' order: round-off only


def test_mean_pool_and_bad_images(converted):
    _, module, variables, images, _ = converted
    mean_vit = ViT(ViTConfig(**SMALL, pool="mean"))
    hidden = mean_vit.apply(variables, images)
    pooled = mean_vit.apply(variables, hidden, method=ViT.pooled)
    np.testing.assert_allclose(pooled, hidden[:, 1:].mean(1), atol=1e-5)
    with pytest.raises(ValueError, match="NHWC"):
        module.apply(variables, images.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTConfig(image_size=30, patch_size=8)


def test_vit_sharded_over_fsdp_x_tensor_matches_unsharded():
    assert len(jax.devices()) >= 8
    config = ViTConfig(**SMALL)
    module = ViT(config)
    images = jnp.asarray(np.random.RandomState(1).randn(4, 32, 32, 3), jnp.float32)
    boxed = module.init(jax.random.key(0), images)
    variables = unbox(boxed)
    expected = module.apply(variables, images)

    mesh = jax.make_mesh(
        (1, 2, 4), ("data", "fsdp", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )
    logical = nn.get_partition_spec(boxed)
    shardings = nn.logical_to_mesh_sharding(logical, mesh, LOGICAL_AXIS_RULES)
    qkv = shardings["params"]["encoder"]["layer_0"]["attn"]["query"]["kernel"]
    assert qkv.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    sharded_vars = jax.device_put(variables, shardings)
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        out = jax.jit(module.apply)(sharded_vars, jax.device_put(images, batch_sharding))
    assert len(out.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=2e-5, rtol=1e-5)


def test_patch_embed_matmul_equals_the_strided_conv_it_replaces():
    """PatchEmbed keeps nn.Conv's params and init, and its values (also when the image size is
    not a multiple of the patch: VALID drops the remainder)."""
    from emojax.nn.patch import PatchEmbed

    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 35, 50, 3)).astype(np.float32))
    ours = PatchEmbed(16, (16, 8))
    conv = nn.Conv(
        16, (16, 8), strides=(16, 8), padding="VALID", kernel_init=nn.initializers.lecun_normal()
    )
    variables = nn.unbox(ours.init(jax.random.key(1), x))
    reference = conv.init(jax.random.key(1), x)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(variables["params"][name], reference["params"][name])
    out = ours.apply(variables, x)
    assert out.shape == (2, 2, 6, 16)
    np.testing.assert_allclose(out, conv.apply(variables, x), atol=1e-5, rtol=1e-5)
