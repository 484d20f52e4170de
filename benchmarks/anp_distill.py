"""ANP distillation (seed 002) side by side with its peers, one section per comparison, same
process.

    python -m benchmarks.anp_distill [--quick] [--json PATH] [--only SECTION]

* ``train_step`` — ONE training step of the student: ResNet-50 (``--quick``: ResNet-18 at width
  8) + dense head, the seed's loss ``(alpha BCE(P_RN, P_SB) + BCE(P_RN, y)) / (1 + alpha)``
  against fixed teacher probabilities, Adam — emojax (one ``jax.jit`` step, state donated:
  :class:`emojax.models.anp_distill.model.Student`, :func:`emojax.losses.distill_loss`,
  ``optax.adam``) against PyTorch eager (:class:`benchmarks.torch_anp_distill.TorchStudent`: the
  Hugging Face ``ResNetModel``, ``torch.optim.Adam``). Same weights (the torch state_dict
  converted with :func:`emojax.convert.convert_resnet`), same batch; the first two steps' losses
  are printed side by side before the timing; compile time reported, not timed.
* ``saliency`` — the batched Itti-Koch-Niebur map (:func:`emojax.ops.saliency.itti_koch_saliency`,
  jitted) against the NumPy/SciPy reference of the same algorithm
  (:func:`benchmarks.torch_anp_distill.numpy_saliency`, one image at a time, float64), with the
  largest difference of the maps.

XLA:CPU convolutions are not a target here (see docs/benchmarks.md); record the ratios only on a
quiet machine.
"""

from __future__ import annotations

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

TITLE = "anp_distill: student step and saliency vs their peers"
LR = 1e-4
ALPHA = 1.0
# (depth, width, image size, batch)
CPU_STEP = (50, 64, 128, 16)
QUICK_STEP = (18, 8, 32, 4)
CPU_SALIENCY = (32, 256)  # (batch, image size): the paper's levels, map 16 x 16
QUICK_SALIENCY = (2, 64)


def train_step_section(quick: bool) -> dict:
    """The student's training step: emojax jit (donated) vs the same model in PyTorch eager."""
    import optax
    import torch

    from benchmarks.torch_anp_distill import TorchStudent, anp_loss
    from emojax.convert import convert_resnet
    from emojax.losses import distill_loss
    from emojax.models.anp_distill.model import MEAN, STD, Student
    from emojax.nn.resnet import resnet_config

    depth, width, size, batch = QUICK_STEP if quick else CPU_STEP
    torch.manual_seed(0)
    ref = TorchStudent(depth, width, outputs=1)
    ref.train()
    _, resnet_vars = convert_resnet(ref.resnet.state_dict(), resnet_config(depth, width))
    model = Student(depth, width, outputs=1)
    head = {
        "kernel": jnp.asarray(ref.head.weight.detach().numpy().T),
        "bias": jnp.asarray(ref.head.bias.detach().numpy()),
    }
    params = {"resnet": resnet_vars["params"], "head": head}
    batch_stats = {"resnet": resnet_vars["batch_stats"]}

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=batch).astype(np.float32)
    p_sb = rng.uniform(0, 1, size=batch).astype(np.float32)
    t_images = (torch.from_numpy(images).float() / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    t_images = t_images.permute(0, 3, 1, 2).contiguous()
    t_labels, t_p_sb = torch.from_numpy(labels), torch.from_numpy(p_sb)
    t_opt = torch.optim.Adam(ref.parameters(), lr=LR)

    tx = optax.adam(LR)

    def step(state, images, p_sb, labels):
        params, batch_stats, opt_state = state

        def loss_fn(p):
            logits, updates = model.apply(
                {"params": p, "batch_stats": batch_stats}, images, train=True,
                mutable=["batch_stats"],
            )  # fmt: skip
            return distill_loss(logits[:, 0], p_sb, labels, method="anp", alpha=ALPHA), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        new, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, new), updates["batch_stats"], opt_state), loss

    jitted = jax.jit(step, donate_argnums=0)
    state = {"s": (params, batch_stats, tx.init(params))}
    args = (jnp.asarray(images), jnp.asarray(p_sb), jnp.asarray(labels))
    start = time.perf_counter()
    compiled = jitted.lower(state["s"], *args).compile()
    compile_s = time.perf_counter() - start

    def run_emojax():
        state["s"], loss = compiled(state["s"], *args)
        return loss

    def run_torch():
        t_opt.zero_grad()
        loss = anp_loss(ref(t_images)[:, 0], t_p_sb, t_labels, ALPHA)
        loss.backward()
        t_opt.step()
        return loss.detach()

    losses = {"emojax": [], "torch": []}
    for _ in range(2):
        losses["emojax"].append(float(jax.block_until_ready(run_emojax())))
        losses["torch"].append(float(run_torch()))
    ms = interleaved_ms({"emojax": run_emojax, "torch": run_torch}, rounds=1 if quick else 3)
    name = f"ResNet-{depth} w{width} step b={batch} {size}px (seed loss, Adam)"
    rows = [Row(name, ms["emojax"], ms["torch"], extra=step_extra(compiled, compile_s, ms))]
    print_table(f"{TITLE} — student step (torch threads {torch.get_num_threads()})", rows)
    for n in ("emojax", "torch"):
        print(f"loss {n:>6}: step 1 {losses[n][0]:.6f}, step 2 {losses[n][1]:.6f}")
    return {
        "shape": {"depth": depth, "width": width, "image": size, "batch": batch},
        "losses": losses,
        "compile_s": compile_s,
        "rows": row_dicts(rows),
    }


def saliency_section(quick: bool) -> dict:
    """Batched jitted saliency vs the NumPy reference (per image, float64)."""
    from benchmarks.torch_anp_distill import numpy_saliency
    from emojax.ops.saliency import itti_koch_saliency

    batch, size = QUICK_SALIENCY if quick else CPU_SALIENCY
    levels = dict(centers=(1, 2), deltas=(2, 3), map_level=2) if quick else {}
    images = np.random.default_rng(0).uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    device_images = jnp.asarray(images)
    start = time.perf_counter()
    jax.block_until_ready(itti_koch_saliency(device_images, **levels))
    compile_s = time.perf_counter() - start

    def run_emojax():
        return itti_koch_saliency(device_images, **levels)

    def run_numpy():
        return np.stack([numpy_saliency(image, **levels) for image in images])

    diff = float(np.abs(np.asarray(run_emojax()) - run_numpy()).max())
    ms = interleaved_ms({"emojax": run_emojax, "numpy": run_numpy}, rounds=1 if quick else 3)
    name = f"Itti-Koch saliency b={batch} {size}px"
    rows = [Row(name, ms["emojax"], ms["numpy"], extra={"max_abs_diff": f"{diff:.1e}"})]
    print_table(f"{TITLE} — saliency", rows, peer="numpy")
    return {
        "shape": {"batch": batch, "image": size, **levels},
        "compile_s": compile_s,
        "max_abs_diff": diff,
        "rows": row_dicts(rows),
    }


SECTIONS = {"train_step": train_step_section, "saliency": saliency_section}


def main(argv: list[str] | None = None) -> dict:
    return run_sections(TITLE, SECTIONS, argv)


if __name__ == "__main__":
    main()
