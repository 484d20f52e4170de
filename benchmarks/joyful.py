"""Joyful (seed 001): one training step, emojax vs PyTorch + torch_geometric, same process.

    python -m benchmarks.joyful [--quick] [--json PATH]

One step = forward (code fusion with basis attention and both autoencoders, the masked context
transformer, RGCN -> TransformerConv -> BatchNorm, classifier), the two augmented views (feature
masking + per-dialogue edge rewiring) through the RGCN, CE + 0.05 fusion + 0.2 GRACE contrast,
backward and an Adam update. emojax: :class:`emojax.models.joyful.method.Joyful`'s loss in one
``jax.jit`` step with the state donated (compile not timed). Peer:
:class:`benchmarks.torch_joyful.TorchJoyful` (``nn.TransformerEncoder`` with a padding mask,
``torch_geometric`` ``RGCNConv`` / ``TransformerConv`` on the packed real utterances,
``torch.optim.Adam``), eager. Both start from the same weights on the same batch: the first
step's CE + fusion terms (no dropout, no randomness) are printed side by side and must agree;
the contrast terms differ only by their random views.

Sizes: :data:`IEMOCAP` (a batch of 32 dialogues, lengths drawn around IEMOCAP's mean of 48,
bucket 110, the official widths: local 460, autoencoders 1024 -> 512, context 4 x 1024 with 8
heads and FFN 2048, graph 100 x 4 heads; basis attention in chunks of 512 utterances in both),
``--quick``: :data:`QUICK`.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    Row,
    interleaved_ms,
    print_table,
    row_dicts,
    run_sections,
    step_extra,
)

TITLE = "joyful: one Joyful training step vs PyTorch + torch_geometric"
DIMS = {"audio": 100, "text": 768, "visual": 512}


@dataclasses.dataclass(frozen=True)
class Size:
    dialogues: int
    max_len: int
    mean_len: int
    local_dim: int
    hidden: int
    code: int
    layers: int
    heads: int
    mlp: int
    out: int
    chunk: int
    rounds: int


IEMOCAP = Size(32, 110, 48, 460, 1024, 512, 4, 8, 2048, 100, 512, 3)
QUICK = Size(4, 12, 7, 16, 32, 16, 1, 2, 32, 8, 16, 1)


def make_config(size: Size):
    """The iemocap6 config at ``size`` (dropout 0 so that both frameworks compute the same)."""
    import importlib.resources

    from emojax.train import load_config
    from emojax.train.config import validate_config

    path = importlib.resources.files("emojax") / "configs" / "joyful" / "iemocap6.py"
    c = load_config(str(path))
    with c.unlocked():
        c.data.max_len = size.max_len
        c.data.global_batch_size = size.dialogues
        c.model.fusion.update(
            local_dim=size.local_dim, hidden=size.hidden, code_dim=size.code, chunk=size.chunk
        )
        c.model.context.update(
            layers=size.layers, heads=size.heads, mlp_dim=size.mlp, out_dim=size.out
        )
        c.model.classifier_hidden = size.out
        c.model.dropout = 0.0
    return validate_config(c)


def make_batch(method, size: Size, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = np.clip(
        rng.normal(size.mean_len, size.mean_len / 2.5, size.dialogues), 2, size.max_len
    )
    dialogues = [
        {
            **{m: rng.normal(size=(int(n), d)).astype(np.float32) for m, d in DIMS.items()},
            "speaker": rng.integers(0, 2, int(n)),
            "label": rng.integers(0, 6, int(n)),
        }
        for n in lengths
    ]
    return method.collate(dialogues)


def emojax_step(method, model, lr):
    import optax

    tx = optax.adam(lr)

    def step(state, batch, key):
        params, stats, opt = state

        def loss_fn(p):
            loss, (metrics, coll) = method.loss(
                model, {"params": p, "batch_stats": stats}, batch, key, train=True
            )
            return loss, (metrics, coll)

        (loss, (metrics, coll)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), coll["batch_stats"], opt), metrics

    return tx, jax.jit(step, donate_argnums=(0,))


def run(size: Size) -> dict:
    import torch

    from benchmarks import torch_joyful as tj
    from emojax.models.joyful.method import Joyful

    config = make_config(size)
    method = Joyful(config)
    model = method.build_model()
    batch = make_batch(method, size)
    variables = jax.jit(lambda b: method.init_variables(model, jax.random.key(0), b))(batch)
    m = config.model
    peer = tj.TorchJoyful(
        DIMS,
        num_classes=6,
        local_dim=size.local_dim,
        hidden=size.hidden,
        code=size.code,
        layers=size.layers,
        heads=size.heads,
        mlp=size.mlp,
        out=size.out,
        n_speakers=2,
        graph_heads=4,
        classifier_hidden=size.out,
    )
    peer.fuse.chunk = size.chunk
    peer.load_state_dict(
        tj.state_dict_from_flax(
            variables["params"], variables["batch_stats"], tuple(DIMS), size.layers
        )
    )
    tb = tj.torch_batch(batch, tuple(DIMS))
    lr = config.optimizer.learning_rate
    opt = torch.optim.Adam(peer.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)

    # the deterministic terms of the first step, side by side
    params = jax.tree.map(jnp.copy, variables["params"])
    _, (metrics, _) = jax.jit(
        lambda p, b: method.loss(
            model,
            {"params": p, "batch_stats": variables["batch_stats"]},
            b,
            jax.random.key(1),
            train=True,
        )
    )(params, batch)
    peer.train()
    with torch.no_grad():
        logits, fusion, _, _ = peer(tb)
        torch_ce = float(torch.nn.functional.cross_entropy(logits, tb["label"]))
        torch_fusion = float(fusion.mean())
    parts = {
        "emojax": {"ce": float(metrics["loss_task"]), "fusion": float(metrics["loss_fusion"])},
        "torch": {"ce": torch_ce, "fusion": torch_fusion},
    }

    tx, step = emojax_step(method, model, lr)
    state = [(variables["params"], variables["batch_stats"], tx.init(variables["params"]))]
    keys = iter(jax.random.split(jax.random.key(2), 1000))
    start = time.perf_counter()
    compiled = step.lower(state[0], batch, next(keys)).compile()
    compile_s = time.perf_counter() - start

    def run_emojax():
        state[0], out = compiled(state[0], batch, next(keys))
        return out

    def run_torch():
        opt.zero_grad(set_to_none=True)
        views = tj.random_views(
            tb, len(m.contrast.views), m.contrast.feature_mask, m.contrast.rewire, size.out, gen
        )
        loss = tj.training_loss(
            peer,
            tb,
            views,
            w_contrast=m.contrast.weight,
            w_fusion=m.w_fusion,
            tau=m.contrast.temperature,
        )
        loss.backward()
        opt.step()
        return loss.detach()

    ms = interleaved_ms({"emojax": run_emojax, "torch": run_torch}, rounds=size.rounds)
    nodes = int(np.asarray(batch["utt_mask"]).sum())
    name = f"Joyful train step, {size.dialogues} dialogues ({nodes} utt.)"
    rows = [Row(name, ms["emojax"], ms["torch"], extra=step_extra(compiled, compile_s, ms))]
    print_table(f"{TITLE} (torch threads {torch.get_num_threads()})", rows)
    print(f"first-step terms (same weights and batch): {parts}")
    return {
        "rows": row_dicts(rows),
        "parts": parts,
        "shape": dataclasses.asdict(size) | {"utterances": nodes},
    }


def train_step_section(quick: bool) -> dict:
    return run(QUICK if quick else IEMOCAP)


def main(argv: list[str] | None = None) -> dict:
    return run_sections(TITLE, {"train_step": train_step_section}, argv)


if __name__ == "__main__":
    main()
