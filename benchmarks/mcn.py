"""MCN (seed 004) side by side with its peers, one section per comparison, same process.

    python -m benchmarks.mcn [--quick] [--json PATH]

Sections (each prints its own table and adds its rows to the JSON under its name):

* ``kmeans`` — part (b) of issue 17: one k-means refit, the MCN queue (40,960 x 1024 float32,
  K = 256; ``--quick``: 4,096 x 128, K = 32) for the same number of Lloyd iterations (20), from
  the same initial centroids (emojax's k-means++ seeds), against faiss (``spherical=True``) and
  scikit-learn ``KMeans`` (Euclidean Lloyd on the L2-normalised rows, ``n_init=1``, ``tol=0``).
  emojax runs :func:`emojax.losses.kmeans_fit` jitted (compile not timed) with a fixed
  iteration count. Rows: time of each and the ratio peer/emojax, plus the cosine inertia
  ``sum_i (1 - max_k cos(x_i, c_k))`` of each result, computed by one function for all three.
  The data are unit rows around 2K random directions (so the clustering has structure).

* ``train_step`` — part (a) of issue 17: ONE MCN training step — the three towers (video GEU,
  audio ResDAVEnet + GEU + projection, text masked max + GEU), the three MMS pairs, the k-means
  step (a refit of ``kmeans_iters`` cosine Lloyd iterations on the full queue + the batch, from
  the previous centroids) with the clustering CE to its centroids, the reconstruction MSE
  (weight 50, undetached targets as in the official code), and an Adam update — in emojax (one
  ``jax.jit`` step with the train state donated: :class:`emojax.models.mcn.model.MCNModel`,
  :func:`emojax.losses.mms_loss`, :func:`~emojax.losses.kmeans_step`,
  :func:`~emojax.losses.cluster_loss`, :func:`~emojax.losses.reconstruction_loss`,
  ``optax.adam``) against the same model in PyTorch eager (:mod:`benchmarks.torch_mcn`:
  the official ``Net`` layout, ``torch.optim.Adam``, the ``fast_pytorch_kmeans`` cosine update).
  Both start from the same weights (the torch module's state_dict converted with
  :func:`emojax.convert.mcn.convert_mcn`), the same centroids and queue, on the same batch; the
  losses of their first two steps are printed side by side (and checked in the ``--quick``
  test) before the timing. Sizes: :data:`CPU_SIZE` (the official towers at 1024 rows do not fit
  a 2-core CPU's time budget: see docs/benchmarks.md), ``--quick``: :data:`QUICK_SIZE`. The
  compile time of the jitted step is reported, not timed.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    Row,
    first_two_steps,
    interleaved_ms,
    print_table,
    report_train_step,
    run_sections,
    step_extra,
)
from emojax.losses import (
    KMeansState,
    cluster_loss,
    cosine_inertia,
    fuse,
    kmeans_fit,
    kmeans_plusplus,
    kmeans_step,
    mms_loss,
    reconstruction_loss,
)

TITLE = "mcn: MCN pieces vs their peers"


# -- section (a): one training step ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StepSize:
    """Sizes of the training-step comparison."""

    batch: int
    embed: int
    video: int
    word: int
    words: int
    frames: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    recon_hidden: int
    clusters: int
    queue: int
    kmeans_iters: int

    def describe(self) -> str:
        return (
            f"batch {self.batch}, embed {self.embed}, video {self.video}, word {self.word} x "
            f"{self.words} words, audio {self.frames} frames x 40 mel, ResDAVEnet widths "
            f"{self.widths} depths {self.depths}, recon hidden {self.recon_hidden}, K "
            f"{self.clusters}, queue {self.queue}, {self.kmeans_iters} Lloyd it/step"
        )


# The official sizes (embed 6144, ResDAVEnet (128, 128, 256, 512, 1024) x (2, 2, 2, 2) on
# 1024+ frames, queue 40,960) at 1024 rows cost several TFLOP per step: minutes on 2 CPU cores.
CPU_SIZE = StepSize(
    batch=1024, embed=1024, video=4096, word=300, words=20, frames=128,
    widths=(64, 64, 128, 256, 512), depths=(1, 1, 1, 1), recon_hidden=1024,
    clusters=256, queue=8192, kmeans_iters=5,
)  # fmt: skip
QUICK_SIZE = StepSize(
    batch=64, embed=32, video=64, word=16, words=6, frames=32,
    widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1), recon_hidden=32,
    clusters=8, queue=256, kmeans_iters=5,
)  # fmt: skip
PAIRS = (("video", "text"), ("audio", "text"), ("audio", "video"))
MARGIN, W_CLUSTER, W_RECON, LR = 0.001, 1.0, 50.0, 1e-4


def step_inputs(size: StepSize, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """(batch in emojax layout, queue [Q, embed], initial centroids [K, embed]) as numpy."""
    rng = np.random.default_rng(seed)
    b = size.batch
    video = rng.standard_normal((b, size.video)).astype(np.float32)
    video /= np.linalg.norm(video, axis=1, keepdims=True)  # pooled + L2-normalised features
    mel = rng.standard_normal((b, size.frames, 40)).astype(np.float32)
    words = rng.standard_normal((b, size.words, size.word)).astype(np.float32)
    n_words = rng.integers(1, size.words + 1, b)
    mask = np.arange(size.words)[None, :] < n_words[:, None]
    words[~mask] = 0.0
    batch = {"video": video, "audio": mel, "text": words, "text_mask": mask}
    queue = _queue(size.queue, size.embed, size.clusters, seed + 1) * 0.5
    centroids = queue[rng.choice(size.queue, size.clusters, replace=False)]  # official init
    return batch, queue, np.ascontiguousarray(centroids)


def emojax_train_step(model, size: StepSize, tx):
    """The jitted, donated step ``(state, batch, key) -> (state, (loss, parts))``; ``state`` is
    ``(params, batch_stats, opt_state, KMeansState)``."""
    import optax

    def step(state, batch, key):
        params, batch_stats, opt_state, kmeans = state

        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": batch_stats},
                batch,
                train=True,
                mutable=["batch_stats"],
            )
            emb = {m: out[m] for m in ("video", "audio", "text")}
            l_mms = mms_loss(emb, pairs=PAIRS, margin=MARGIN)
            l_rec = reconstruction_loss(out["recon"], out["recon_targets"], detach_targets=False)
            new_kmeans, labels = kmeans_step(
                kmeans, fuse(emb), key, refit_every=1, max_iter=size.kmeans_iters, tol=None
            )
            l_clu = cluster_loss(emb, new_kmeans.centroids, assignments=labels, margin=MARGIN)
            loss = l_mms + W_CLUSTER * l_clu + W_RECON * l_rec
            parts = {"mms": l_mms, "cluster": l_clu, "recon": l_rec}
            return loss, (updates["batch_stats"], new_kmeans, parts)

        (loss, (batch_stats, kmeans, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, batch_stats, opt_state, kmeans), (loss, parts)

    return jax.jit(step, donate_argnums=0)


def train_step_section(quick: bool) -> dict:
    """One MCN training step: emojax jit (donated) vs the same model in PyTorch eager."""
    import optax
    import torch

    from benchmarks.torch_mcn import TorchMCN, TorchMCNTrainer
    from emojax.convert.mcn import convert_mcn
    from emojax.models.mcn.model import MCNModel
    from emojax.nn.resdavenet import ResDAVEnetConfig

    size = QUICK_SIZE if quick else CPU_SIZE
    rounds = 3
    cfg = ResDAVEnetConfig(widths=size.widths, depths=size.depths)
    torch.manual_seed(0)
    ref = TorchMCN(
        cfg, conv2d=True, embed_dim=size.embed, video_dim=size.video, word_dim=size.word,
        recon_hidden=size.recon_hidden,
    )  # fmt: skip
    model = MCNModel(
        embed_dim=size.embed, video_dim=size.video, word_dim=size.word, audio=cfg,
        recon_hidden=size.recon_hidden,
    )  # fmt: skip
    variables = convert_mcn(ref.state_dict(), model)
    batch_np, queue_np, centroids_np = step_inputs(size)
    trainer = TorchMCNTrainer(
        ref, centroids_np, queue_np, pairs=PAIRS, lr=LR, iters=size.kmeans_iters, margin=MARGIN,
        w_cluster=W_CLUSTER, w_recon=W_RECON,
    )  # fmt: skip
    t_args = trainer.tensors(batch_np)

    tx = optax.adam(LR)
    zero = jnp.zeros((), jnp.int32)
    kmeans = KMeansState(
        jnp.asarray(centroids_np), jnp.asarray(queue_np), zero, jnp.asarray(size.queue, jnp.int32),
        jnp.ones((), jnp.int32),  # step 1: no re-initialisation, refit from these centroids
    )  # fmt: skip
    params = variables["params"]
    state = {"s": (params, variables["batch_stats"], tx.init(params), kmeans)}
    batch = {k: jnp.asarray(v) for k, v in batch_np.items()}
    key = jax.random.key(0)
    step = emojax_train_step(model, size, tx)
    start = time.perf_counter()
    compiled = step.lower(state["s"], batch, key).compile()
    compile_s = time.perf_counter() - start

    def run_emojax():
        state["s"], out = compiled(state["s"], batch, key)
        return out

    def run_torch():
        return trainer.step(t_args)

    # the same loss on the same weights and inputs: the first two steps of each (the second
    # after one Adam update and one k-means refit + queue push)
    losses, parts = first_two_steps({"emojax": run_emojax, "torch": run_torch})
    ms = interleaved_ms({"emojax": run_emojax, "torch": run_torch}, rounds=rounds)
    name = f"MCN train step b={size.batch} (towers+MMS+k-means+recon+Adam)"
    row = Row(name, ms["emojax"], ms["torch"], extra=step_extra(compiled, compile_s, ms))
    title = f"{TITLE} — (a) one training step (torch threads {torch.get_num_threads()})"
    return report_train_step(title, row, size, losses, parts, compile_s)


# -- section (b): the k-means refit ----------------------------------------------------------


def _queue(n: int, dim: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2 * k, dim)).astype(np.float32)
    x = centres[rng.integers(0, 2 * k, n)] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def kmeans_section(quick: bool) -> dict:
    """The k-means refit table: emojax vs faiss vs scikit-learn (time and cosine inertia)."""
    import faiss
    from sklearn.cluster import KMeans

    n, dim, k = (4096, 128, 32) if quick else (40_960, 1024, 256)
    iters, rounds = 20, (3 if quick else 2)
    x_np = _queue(n, dim, k)
    x = jnp.asarray(x_np)
    init = jax.jit(kmeans_plusplus, static_argnums=2)(jax.random.key(0), x, k)
    init_np = np.asarray(init)
    fit = jax.jit(lambda x, c: kmeans_fit(x, c, max_iter=iters, tol=None))
    inertia = jax.jit(cosine_inertia)
    results = {}

    def run_emojax():
        results["emojax"] = fit(x, init)
        return results["emojax"]

    def run_faiss():
        km = faiss.Kmeans(
            dim, k, niter=iters, spherical=True, seed=0, max_points_per_centroid=n, verbose=False
        )
        km.train(x_np, init_centroids=init_np)
        results["faiss"] = km.centroids
        return None

    def run_sklearn():
        km = KMeans(k, init=init_np, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")
        results["sklearn"] = km.fit(x_np).cluster_centers_.astype(np.float32)
        return None

    ms = interleaved_ms(
        {"emojax": run_emojax, "faiss": run_faiss, "sklearn": run_sklearn}, rounds=rounds
    )
    inertias = {name: float(inertia(x, jnp.asarray(c))) for name, c in results.items()}
    inertias["init"] = float(inertia(x, init))
    shape = f"{n}x{dim} K={k} {iters} it"
    rows = [
        Row(
            f"k-means refit {shape}: {peer}",
            ms["emojax"],
            ms[peer],
            extra={
                "inertia_emojax": round(inertias["emojax"], 1),
                "inertia_peer": round(inertias[peer], 1),
            },
        )
        for peer in ("faiss", "sklearn")
    ]
    print_table(f"{TITLE} — (b) k-means refit", rows, peer="peer")
    print(
        f"cosine inertia, sum(1 - cos) over {n} rows: init {inertias['init']:.1f}, emojax "
        f"{inertias['emojax']:.1f}, faiss {inertias['faiss']:.1f}, sklearn "
        f"{inertias['sklearn']:.1f}; threads: faiss {faiss.omp_get_max_threads()}, "
        f"cpus {os.cpu_count()}"
    )
    return {
        "shape": {"rows": n, "dim": dim, "clusters": k, "iterations": iters},
        "inertia": inertias,
        "rows": [
            {
                "name": r.name,
                "emojax_ms": r.emojax_ms,
                "peer_ms": r.peer_ms,
                "ratio": r.ratio,
                **r.extra,
            }  # fmt: skip
            for r in rows
        ],
    }


# -- the sections, in the order they run: each ``(quick: bool) -> dict`` prints its table and
# returns its JSON-able rows
SECTIONS = {
    "train_step": train_step_section,
    "kmeans": kmeans_section,
}


def main(argv: list[str] | None = None) -> dict:
    return run_sections(TITLE, SECTIONS, argv)


if __name__ == "__main__":
    main()
