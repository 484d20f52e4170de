"""Gated Embedding Unit vs the same layers written in PyTorch (MCN's Gated_Embedding_Unit)."""

import jax
import numpy as np
import torch

from emojax.convert import Rule, state_dict_to_flax
from emojax.convert.core import linear_rules
from emojax.nn.geu import GatedEmbeddingUnit


class TorchGEU(torch.nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.fc = torch.nn.Linear(d_in, d_out)
        self.cg = torch.nn.Linear(d_out, d_out)

    def forward(self, x):
        y = self.fc(x)
        y = torch.nn.functional.glu(torch.cat([y, self.cg(y)], -1), -1)
        return torch.nn.functional.normalize(y, dim=-1)


def test_geu_matches_torch_glu_formulation():
    torch.manual_seed(0)
    ref = TorchGEU(12, 8)
    x = np.random.RandomState(0).randn(5, 12).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.tensor(x)).numpy()
    rules = linear_rules("fc", ("fc",)) + linear_rules("cg", ("gating", "fc"))
    assert all(isinstance(r, Rule) for r in rules)
    params = state_dict_to_flax(ref.state_dict(), rules)
    got = GatedEmbeddingUnit(8).apply({"params": params}, x)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
    raw = GatedEmbeddingUnit(8, normalize=False).apply({"params": params}, x)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=-1, keepdims=True), want, atol=1e-6)
    shapes = jax.eval_shape(lambda: GatedEmbeddingUnit(8).init(jax.random.key(0), x))
    assert shapes["params"]["gating"]["fc"]["kernel"].value.shape == (8, 8)
