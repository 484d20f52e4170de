"""Graph layers on padded arrays vs torch_geometric GCNConv, RGCNConv, TransformerConv."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch_geometric import nn as pyg

from emojax.convert import state_dict_to_flax
from emojax.convert.graph import gcn_rules, rgcn_rules, transformer_conv_rules
from emojax.nn.graph import GCNConv, RGCNConv, TransformerConv

N_REAL, N_PAD, E_PAD, F_IN = 7, 10, 24, 6


@pytest.fixture(scope="module")
def graph():
    """A 7-node graph (with a self loop, a duplicate edge and an isolated node) padded to
    10 nodes and 24 edges."""
    rng = np.random.RandomState(0)
    src = np.array([0, 1, 2, 3, 4, 5, 1, 2, 0, 3, 3, 4, 2, 5, 1])
    dst = np.array([1, 2, 3, 4, 5, 0, 0, 2, 2, 1, 1, 0, 4, 3, 5])  # 2->2 loop, 3->1 twice; 6 alone
    edge_type = rng.randint(0, 3, size=src.size)
    x = rng.randn(N_REAL, F_IN).astype(np.float32)
    pad_e = E_PAD - src.size
    return dict(
        x=x,
        src=src,
        dst=dst,
        edge_type=edge_type,
        x_pad=np.concatenate([x, rng.randn(N_PAD - N_REAL, F_IN).astype(np.float32)]),
        edge_index_pad=np.stack(
            [
                np.concatenate([src, np.zeros(pad_e, int)]),
                np.concatenate([dst, np.zeros(pad_e, int)]),
            ]
        ),
        edge_type_pad=np.concatenate([edge_type, np.zeros(pad_e, int)]),
        edge_mask=np.arange(E_PAD) < src.size,
        node_mask=np.arange(N_PAD) < N_REAL,
    )


def _torch_edges(g):
    return torch.tensor(np.stack([g["src"], g["dst"]]))


def _check(ours, ref, g):
    ours = np.asarray(ours)
    np.testing.assert_allclose(ours[:N_REAL], ref, atol=2e-5, rtol=1e-5)  # torch vs XLA round-off
    np.testing.assert_array_equal(ours[N_REAL:], 0.0)  # padding nodes are zeroed


def test_gcn_conv_matches_torch_geometric(graph):
    torch.manual_seed(0)
    conv = pyg.GCNConv(F_IN, 5)
    torch.nn.init.normal_(conv.bias)
    with torch.no_grad():
        ref = conv(torch.tensor(graph["x"]), _torch_edges(graph)).numpy()
    params = state_dict_to_flax(conv.state_dict(), gcn_rules())
    ours = GCNConv(5).apply(
        {"params": params},
        graph["x_pad"],
        graph["edge_index_pad"],
        graph["edge_mask"],
        graph["node_mask"],
    )
    _check(ours, ref, graph)


@pytest.mark.parametrize("num_bases", [None, 2])
def test_rgcn_conv_matches_torch_geometric(graph, num_bases):
    torch.manual_seed(1)
    conv = pyg.RGCNConv(F_IN, 5, num_relations=3, num_bases=num_bases)
    torch.nn.init.normal_(conv.bias)
    with torch.no_grad():
        ref = conv(
            torch.tensor(graph["x"]), _torch_edges(graph), torch.tensor(graph["edge_type"])
        ).numpy()
    params = state_dict_to_flax(conv.state_dict(), rgcn_rules(num_bases=num_bases))
    layer = RGCNConv(5, num_relations=3, num_bases=num_bases)
    ours = jax.jit(layer.apply)(
        {"params": params},
        graph["x_pad"],
        graph["edge_index_pad"],
        graph["edge_type_pad"],
        graph["edge_mask"],
        graph["node_mask"],
    )
    _check(ours, ref, graph)


@pytest.mark.parametrize("concat", [True, False])
def test_transformer_conv_matches_torch_geometric(graph, concat):
    torch.manual_seed(2)
    conv = pyg.TransformerConv(F_IN, 4, heads=3, concat=concat).eval()
    with torch.no_grad():
        ref = conv(torch.tensor(graph["x"]), _torch_edges(graph)).numpy()
    params = state_dict_to_flax(conv.state_dict(), transformer_conv_rules())
    layer = TransformerConv(4, heads=3, concat=concat)
    ours = jax.jit(layer.apply)(
        {"params": params},
        graph["x_pad"],
        graph["edge_index_pad"],
        graph["edge_mask"],
        graph["node_mask"],
    )
    _check(ours, ref, graph)


def test_padding_edges_do_not_leak(graph):
    layer = TransformerConv(4, heads=2)
    variables = layer.init(
        jax.random.key(0), graph["x_pad"], graph["edge_index_pad"], graph["edge_mask"]
    )
    base = layer.apply(variables, graph["x_pad"], graph["edge_index_pad"], graph["edge_mask"])
    # padding edges pointing elsewhere change nothing
    moved = graph["edge_index_pad"].copy()
    moved[:, ~graph["edge_mask"]] = 3
    again = layer.apply(variables, graph["x_pad"], moved, graph["edge_mask"])
    np.testing.assert_allclose(base, again, atol=1e-6)


def test_graph_layers_reject_bad_shapes(graph):
    layer = GCNConv(3)
    with pytest.raises(ValueError, match="edge_index must be"):
        layer.init(jax.random.key(0), graph["x_pad"], graph["edge_index_pad"].T)
    with pytest.raises(ValueError, match="edge_mask must be"):
        layer.init(jax.random.key(0), graph["x_pad"], graph["edge_index_pad"], jnp.ones(3, bool))
    with pytest.raises(ValueError, match="edge_type must be"):
        RGCNConv(3, 2).init(
            jax.random.key(0), graph["x_pad"], graph["edge_index_pad"], jnp.zeros(3, int)
        )


@pytest.mark.parametrize(
    "layer, extra",
    [(GCNConv(3), ()), (TransformerConv(3), ()), (RGCNConv(3, 3), ("edge_type_pad",))],
)
def test_graph_layers_reject_bad_indices(graph, layer, extra):
    args = [graph[k] for k in extra]
    variables = layer.init(jax.random.key(0), graph["x_pad"], graph["edge_index_pad"], *args)
    # eager: a node id outside [0, N) is an error, not a silently clamped gather
    bad = graph["edge_index_pad"].copy()
    bad[1, 0] = N_PAD
    with pytest.raises(ValueError, match=r"edge_index values must be in \[0, 10\)"):
        layer.apply(variables, graph["x_pad"], bad, *args)
    bad[1, 0] = -1
    with pytest.raises(ValueError, match="got \\[-1,"):
        layer.apply(variables, graph["x_pad"], bad, *args)
    with pytest.raises(TypeError, match="edge_index must hold integers"):
        layer.apply(variables, graph["x_pad"], graph["edge_index_pad"].astype(np.float32), *args)
    # under jit the values are not known: valid graphs still run
    jitted = jax.jit(lambda v, x, e, *a: layer.apply(v, x, e, *a))
    assert jitted(variables, graph["x_pad"], graph["edge_index_pad"], *args).shape[0] == N_PAD


def test_rgcn_rejects_unknown_relations(graph):
    layer = RGCNConv(3, num_relations=3)
    args = (graph["x_pad"], graph["edge_index_pad"])
    variables = layer.init(jax.random.key(0), *args, graph["edge_type_pad"])
    bad = graph["edge_type_pad"].copy()
    bad[0] = 3
    with pytest.raises(ValueError, match=r"edge_type values must be in \[0, 3\) \(relation ids\)"):
        layer.apply(variables, *args, bad)
