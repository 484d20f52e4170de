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

The (a) section — one MCN training step vs PyTorch eager — is not written yet: see ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import Row, interleaved_ms, machine, print_table
from emojax.losses import cosine_inertia, kmeans_fit, kmeans_plusplus

TITLE = "mcn: MCN pieces vs their peers"


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
            f"k-means refit {shape}: faiss",
            ms["emojax"],
            ms["faiss"],
            extra={
                "inertia_emojax": round(inertias["emojax"], 1),
                "inertia_peer": round(inertias["faiss"], 1),
            },  # fmt: skip
        ),
        Row(
            f"k-means refit {shape}: sklearn",
            ms["emojax"],
            ms["sklearn"],
            extra={
                "inertia_emojax": round(inertias["emojax"], 1),
                "inertia_peer": round(inertias["sklearn"], 1),
            },  # fmt: skip
        ),
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


# -- the sections, in the order they run ----------------------------------------------------
# Part (a), "one MCN training step vs PyTorch eager", goes here as another section: a function
# ``(quick: bool) -> dict`` that prints its table (benchmarks.common.print_table) and returns
# its JSON-able rows, registered below as "train_step" before "kmeans".
SECTIONS = {
    "kmeans": kmeans_section,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--only", default=None, choices=sorted(SECTIONS), help="run one section only"
    )
    args = parser.parse_args(argv)
    payload = {"benchmark": TITLE, "machine": machine(), "quick": args.quick, "sections": {}}
    for name, section in SECTIONS.items():
        if args.only in (None, name):
            payload["sections"][name] = section(args.quick)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    main()
