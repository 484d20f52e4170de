"""emojax's XLA:CPU FFI kernels alone vs torch, and vs emojax's own XLA path, CPU.

    python -m benchmarks.cpu_kernels [--quick] [--json PATH]

Shapes are those of the encoders benchmark: MiniLM-L6 (b=16, len=128, 12 heads of 32, half the
batch with a quarter padding) and ViT-S/16 (b=8, 197 tokens, 6 heads of 64).

- Softmax self-attention on the packed q/k/v projection [batch, len, 3, heads, dim]:
  ``ops.self_attention`` vs ``torch.nn.functional.scaled_dot_product_attention``.
- LayerNorm of the [tokens, 384] hidden states: ``ops.layer_norm`` vs
  ``torch.nn.functional.layer_norm``.
- The dense layers of one encoder layer (q/k/v 384 -> 1152, out 384 -> 384, MLP 384 -> 1536 ->
  384) on the [tokens, 384] hidden states: ``ops.dense`` vs ``torch.nn.functional.linear`` with
  an ``nn.Linear``-style [out, in] weight.

Forward rows return the output; forward+backward rows the gradients of sum(out**2) w.r.t. every
input. "xla ms" (extra column) is the same emojax op on its XLA path (what runs with
``EMOJAX_CPU_KERNELS=0``). Timing: alternating turns (8 attention or dense calls, 40 layer_norm
calls; median; a quarter as many untimed first), so that neither side is timed beside the
other's still-spinning worker threads.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import Row, interleaved_ms, parse_args, print_table, write_json

TITLE = "CPU kernels: emojax jit vs torch eager"
self_attention = importlib.import_module("emojax.ops.self_attention")
layer_norm = importlib.import_module("emojax.ops.layer_norm")
dense = importlib.import_module("emojax.ops.dense")


def jax_steps(fn, *args):
    """(forward, forward+backward over every argument) closures of a jitted fn."""
    forward = jax.jit(fn)
    argnums = tuple(range(len(args)))
    grad = jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), argnums=argnums))
    return (lambda: forward(*args)), (lambda: grad(*args))


def torch_steps(fn, *arrays):
    import torch

    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]

    def forward():
        with torch.no_grad():
            return fn(*tensors)

    def forward_backward():
        for t in tensors:
            t.grad = None
        (fn(*tensors) ** 2).sum().backward()

    return forward, forward_backward


def timed_rows(name: str, fns: dict, rounds: int, block: int) -> list[Row]:
    ms = interleaved_ms(fns, rounds, block)
    return [
        Row(f"{name} forward", ms["kf"], ms["tf"], {"xla ms": round(ms["xf"], 2)}),
        Row(f"{name} forward+backward", ms["kb"], ms["tb"], {"xla ms": round(ms["xb"], 2)}),
    ]


def attention_rows(name, batch, length, heads, dim, padded, rounds):
    import torch

    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((batch, length, 3, heads, dim)).astype(np.float32)
    key_valid = np.ones((batch, length), bool)
    if padded:
        key_valid[: batch // 2, length * 3 // 4 :] = False
    mask = jnp.asarray(key_valid)[:, None, None, :]

    def xla_path(x):
        q, k, v = (x[..., i, :, :] for i in range(3))
        return self_attention.attention(q, k, v, mask=mask)

    def sdpa(packed):
        q, k, v = (packed[:, :, i].transpose(1, 2) for i in range(3))
        attn_mask = torch.tensor(key_valid)[:, None, None, :]
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return out.transpose(1, 2)

    kf, kb = jax_steps(lambda x: self_attention.self_attention(x, mask=mask), jnp.asarray(qkv))
    xf, xb = jax_steps(xla_path, jnp.asarray(qkv))
    tf, tb = torch_steps(sdpa, qkv)
    fns = {"kf": kf, "xf": xf, "tf": tf, "kb": kb, "xb": xb, "tb": tb}
    return timed_rows(f"attention {name}", fns, rounds, block=8)


def layer_norm_rows(name, tokens, width, rounds):
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((tokens, width)).astype(np.float32)
    scale, bias = np.ones(width, np.float32), np.zeros(width, np.float32)
    args = [jnp.asarray(a) for a in (x, scale, bias)]
    kf, kb = jax_steps(lambda x, s, b: layer_norm.layer_norm(x, s, b, eps=1e-12), *args)
    xf, xb = jax_steps(lambda x, s, b: layer_norm._xla_layer_norm(x, s, b, 1e-12), *args)
    tf, tb = torch_steps(
        lambda x, s, b: torch.nn.functional.layer_norm(x, (width,), s, b, eps=1e-12),
        x,
        scale,
        bias,
    )
    fns = {"kf": kf, "xf": xf, "tf": tf, "kb": kb, "xb": xb, "tb": tb}
    return timed_rows(f"layer_norm {name}", fns, rounds, block=40)


def dense_rows(name, tokens, width_in, width_out, rounds):
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((tokens, width_in)).astype(np.float32)
    w = (rng.standard_normal((width_in, width_out)) / np.sqrt(width_in)).astype(np.float32)
    b = np.zeros(width_out, np.float32)
    args = [jnp.asarray(a) for a in (x, w, b)]
    kf, kb = jax_steps(dense.dense, *args)
    xf, xb = jax_steps(dense._xla_dense, *args)
    tf, tb = torch_steps(torch.nn.functional.linear, x, np.ascontiguousarray(w.T), b)
    fns = {"kf": kf, "xf": xf, "tf": tf, "kb": kb, "xb": xb, "tb": tb}
    label = f"dense {name} {tokens}x{width_in}->{width_out}"
    return timed_rows(label, fns, rounds, block=8)


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    import torch

    modules = (self_attention, layer_norm, dense)
    if not all(module.kernel_available() for module in modules):
        print("the CPU kernels are not available here (no compiler, or not a CPU backend)")
    rounds = 3 if args.quick else 15
    rows = attention_rows("MiniLM b=16 len=128 h=12x32", 16, 128, 12, 32, True, rounds)
    rows += attention_rows("ViT-S b=8 len=197 h=6x64", 8, 197, 6, 64, False, rounds)
    rows += layer_norm_rows("MiniLM 2048x384", 2048, 384, rounds)
    rows += layer_norm_rows("ViT-S 1576x384", 1576, 384, rounds)
    for name, tokens in (("ViT-S", 1576), ("MiniLM", 2048)):
        for width_in, width_out in ((384, 1152), (384, 384), (384, 1536), (1536, 384)):
            rows += dense_rows(name, tokens, width_in, width_out, rounds)
    print_table(f"{TITLE} (torch threads {torch.get_num_threads()})", rows)
    write_json(args.json, TITLE, rows)


if __name__ == "__main__":
    main()
