"""ResNet v1.5 vs transformers.ResNetModel (random-init small configs, eval mode), functional
batch norm, depth factories."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from emojax.convert import ConversionError, flax_to_state_dict
from emojax.convert.resnet import convert_resnet, resnet_rules
from emojax.nn.resnet import ResNet, ResNetConfig, resnet_config


def _randomise_bn(model):
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


@pytest.mark.parametrize(
    "layer_type,sizes", [("basic", [8, 16, 24, 32]), ("bottleneck", [16, 32, 48, 64])]
)
def test_resnet_matches_transformers(layer_type, sizes):
    torch.manual_seed(0)
    hf_config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=sizes, depths=[2, 1, 1, 1], layer_type=layer_type
    )
    hf = transformers.ResNetModel(hf_config).eval()
    _randomise_bn(hf)
    config = ResNetConfig.from_dict(hf_config.to_dict())
    module, variables = convert_resnet(hf.state_dict(), config)
    images = np.random.RandomState(0).randn(2, 3, 64, 64).astype(np.float32)
    with torch.no_grad():
        ref = hf(torch.tensor(images))
    feats = jax.jit(module.apply)(variables, images.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(
        np.asarray(feats), ref.last_hidden_state.numpy().transpose(0, 2, 3, 1), atol=5e-5, rtol=2e-5
    )  # features reach ~10 after the conv stack: float32 round-off is relative
    pooled = module.apply(variables, images.transpose(0, 2, 3, 1), method=ResNet.embed)
    np.testing.assert_allclose(
        np.asarray(pooled), ref.pooler_output.numpy()[:, :, 0, 0], atol=2e-5, rtol=1e-5
    )
    back = flax_to_state_dict(variables, resnet_rules(config))
    sd = hf.state_dict()
    for name, array in back.items():
        np.testing.assert_array_equal(array, sd[name].numpy(), err_msg=name)


def test_train_mode_updates_batch_stats_functionally():
    config = ResNetConfig(1, 4, (4, 8), (1, 1), "basic")
    module = ResNet(config)
    x = jnp.asarray(np.random.RandomState(0).randn(4, 16, 16, 1), jnp.float32)
    variables = module.init(jax.random.key(0), x)
    out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    assert out.shape == (4, 2, 2, 8)
    before = variables["batch_stats"]["stem"]["norm"]["mean"]
    after = updates["batch_stats"]["stem"]["norm"]["mean"]
    assert not np.allclose(before, after)  # running stats moved, inputs untouched


def test_factories_and_errors():
    r50 = resnet_config(50)
    assert r50.hidden_sizes == (256, 512, 1024, 2048) and r50.layer_type == "bottleneck"
    assert resnet_config(101).depths == (3, 4, 23, 3)
    with pytest.raises(ValueError, match="depth=19"):
        resnet_config(19)
    with pytest.raises(ValueError, match="layer_type"):
        ResNetConfig(layer_type="wide")
    small = resnet_config(18, width=4)
    torch.manual_seed(0)
    hf = transformers.ResNetModel(
        transformers.ResNetConfig(
            embedding_size=4, hidden_sizes=[4, 8, 16, 32], depths=[2, 2, 2, 1], layer_type="basic"
        )
    )
    with pytest.raises(ConversionError, match="missing tensors"):
        convert_resnet(hf.state_dict(), small)


def test_short_1d_conv_path_matches_the_native_conv():
    """ConvNorm's per-tap matmul path (1-D inputs shorter than the kernel on CPU) has nn.Conv's
    param and gives its result, forward and gradient."""
    import flax.linen as fnn

    from emojax.nn.resnet import ConvNorm

    x = jax.random.normal(jax.random.key(0), (3, 6, 5))  # 6 frames < kernel 9
    for stride in (1, 2):
        module = ConvNorm(7, kernel=9, stride=stride, relu=False, spatial_dims=1)
        variables = module.init(jax.random.key(1), x, False)
        kernel = variables["params"]["conv"]["kernel"]
        assert fnn.unbox(kernel).shape == (9, 5, 7)

        def native(k, x, stride=stride):
            conv = jax.lax.conv_general_dilated(
                x, fnn.unbox(k), (stride,), [(4, 4)], dimension_numbers=("NWC", "WIO", "NWC")
            )
            return conv / np.sqrt(1 + 1e-5)  # BatchNorm at init in eval mode

        def ours(k, x, module=module, variables=variables):
            params = {**variables["params"], "conv": {"kernel": k}}
            return module.apply({**variables, "params": params}, x, False)

        np.testing.assert_allclose(ours(kernel, x), native(kernel, x), rtol=1e-5, atol=1e-5)
        grad = jax.grad(lambda k: (ours(k, x) ** 2).sum())(fnn.unbox(kernel))
        want = jax.grad(lambda k: (native(k, x) ** 2).sum())(fnn.unbox(kernel))
        np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-4)
