"""emojax.nn.alpha: the learnable entmax alpha shared by the EmoSense head/views and attention."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emojax import ops
from emojax.nn import alpha_init_fn, learnable_alpha

RANGE = {"min_alpha": 1.01, "max_alpha": 2.0}


class PerHead(nn.Module):
    start: float = 1.3

    @nn.compact
    def __call__(self):
        return learnable_alpha(self, "alpha_raw", self.start, shape=(4,), axes=("heads",), **RANGE)


class Scalar(nn.Module):
    start: float = 1.5

    @nn.compact
    def __call__(self):
        return learnable_alpha(self, "raw_alpha", self.start)


def test_starts_at_init_with_named_axes():
    variables = PerHead().init(jax.random.key(0))
    boxed = variables["params"]["alpha_raw"]
    assert isinstance(boxed, nn.LogicallyPartitioned) and boxed.names == ("heads",)
    np.testing.assert_allclose(
        nn.unbox(boxed), np.full(4, ops.raw_from_alpha(1.3, **RANGE)), rtol=1e-6
    )
    np.testing.assert_allclose(PerHead().apply(variables), 1.3, rtol=1e-6)


def test_scalar_default_range_and_gradient_keeps_it_inside():
    variables = Scalar().init(jax.random.key(0))
    assert variables["params"]["raw_alpha"].shape == ()
    np.testing.assert_allclose(Scalar().apply(variables), 1.5, rtol=1e-6)
    grad = jax.grad(lambda v: Scalar().apply(v))(variables)["params"]["raw_alpha"]
    assert float(grad) > 0
    far = {"params": {"raw_alpha": jnp.float32(1e3)}}
    assert 1.0 < float(Scalar().apply(far)) <= 2.0


@pytest.mark.parametrize("bad", [1.0, 2.0, 2.5])
def test_init_outside_the_range_is_an_error(bad):
    with pytest.raises(ValueError, match=rf"alpha_init={bad} must lie in \(1.0, 2.0\)"):
        alpha_init_fn(bad)
    with pytest.raises(ValueError, match="must lie in"):
        Scalar(bad).init(jax.random.key(0))


def test_axes_must_match_shape():
    class Bad(nn.Module):
        @nn.compact
        def __call__(self):
            return learnable_alpha(self, "a", 1.5, shape=(2, 3), axes=("heads",))

    with pytest.raises(ValueError, match=r"axes=\('heads',\) must name each dimension"):
        Bad().init(jax.random.key(0))
