"""Sparse mappings: emojax.ops vs the PyTorch ``entmax`` package (1.3), CPU, same process.

Rows: forward and forward+backward, each timed in alternation with torch and the softmax floor
(so all three see the same background load), (grad of sum(p * cot) w.r.t. x, and alpha for
entmax_bisect, whose alpha is a per-row float32 array as when it is learned). extra gives
jax.nn.softmax on the same shape (the floor; forward or forward+backward to match the row) and
the ratio mapping/softmax. torch uses as many threads as JAX's CPU backend (all cores).

    python -m benchmarks.sparse [--quick] [--json PATH]
"""

from __future__ import annotations

import os
from functools import partial

import entmax
import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.common import Row, interleaved_ms, parse_args, print_table, write_json
from emojax import ops

ALPHA = 1.5


def _jax_fns(name):
    if name == "sparsemax":
        fwd = lambda x, a: ops.sparsemax(x)  # noqa: E731
    elif name == "entmax15":
        fwd = lambda x, a: ops.entmax15(x)  # noqa: E731
    elif name == "softmax":
        fwd = lambda x, a: jax.nn.softmax(x)  # noqa: E731
    else:
        fwd = lambda x, a: ops.entmax_bisect(x, a)  # noqa: E731
    argnums = (0, 1) if name == "entmax_bisect" else 0
    both = jax.grad(lambda x, a, cot: jnp.sum(fwd(x, a) * cot), argnums=argnums)
    return jax.jit(fwd), jax.jit(both)


def _torch_fns(name):
    mapping = {
        "sparsemax": lambda x, a: entmax.sparsemax(x, dim=-1),
        "entmax15": lambda x, a: entmax.entmax15(x, dim=-1),
        "entmax_bisect": lambda x, a: entmax.entmax_bisect(x, a, dim=-1),
    }[name]

    def fwd(x, a):
        with torch.no_grad():
            return mapping(x, a)

    def both(x, a, cot):
        x = x.detach().requires_grad_(True)
        a = a.detach().requires_grad_(name == "entmax_bisect")
        (mapping(x, a) * cot).sum().backward()
        return x.grad

    return fwd, both


def bench_shape(shape, rounds) -> list[Row]:
    """Each row times softmax (the floor), emojax and torch in alternation (same load)."""
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=shape).astype(np.float32) * 2
    cot_np = rng.normal(size=shape).astype(np.float32)
    alpha_np = np.full((shape[0], 1), ALPHA, np.float32)
    x, cot, alpha = jnp.asarray(x_np), jnp.asarray(cot_np), jnp.asarray(alpha_np)
    xt, cott, alphat = torch.tensor(x_np), torch.tensor(cot_np), torch.tensor(alpha_np)
    soft_fwd, soft_both = _jax_fns("softmax")
    rows = []
    tag = "x".join(map(str, shape))
    for name in ("sparsemax", "entmax15", "entmax_bisect"):
        jf, jb = _jax_fns(name)
        tf, tb = _torch_fns(name)
        label = f"{name}(alpha={ALPHA}, per-row array)" if name == "entmax_bisect" else name
        cases = (
            ("fwd", partial(soft_fwd, x, alpha), partial(jf, x, alpha), partial(tf, xt, alphat)),
            (
                "fwd+bwd",
                partial(soft_both, x, alpha, cot),
                partial(jb, x, alpha, cot),
                partial(tb, xt, alphat, cott),
            ),
        )
        for kind, floor, ours, theirs in cases:
            ms = interleaved_ms({"floor": floor, "ours": ours, "torch": theirs}, rounds)
            extra = {
                "softmax_ms": round(ms["floor"], 2),
                "x_softmax": round(ms["ours"] / ms["floor"], 1),
            }
            rows.append(Row(f"{label} {kind} {tag}", ms["ours"], ms["torch"], extra))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    print(f"torch threads = {torch.get_num_threads()} (= CPU cores; XLA:CPU also uses all cores)")
    if args.quick:
        shapes, rounds = [(256, 1024), (16, 32000)], 2
    else:
        shapes, rounds = [(4096, 1024), (256, 32000)], 7
    rows = [row for shape in shapes for row in bench_shape(shape, rounds)]
    title = "Sparse mappings, float32, emojax.ops vs PyTorch entmax 1.3"
    print_table(title, rows)
    write_json(args.json, title, rows)


if __name__ == "__main__":
    main()
