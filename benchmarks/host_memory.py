"""Host allocator modes: MiniLM-L6 forward+backward step time, page faults and memory, CPU.

    python -m benchmarks.host_memory [--quick] [--steps N] [--json PATH]

Runs the same jitted step (gradient of ``sum(hidden**2)`` of the MiniLM-L6 text encoder, batch
16 x 128; ``--quick``: 4 x 64) in one fresh process per glibc malloc mode, since the mode must be
set before JAX starts its threads:

- ``default``: glibc as it is;
- ``retained``: ``retain_freed_host_memory()`` (what ``emojax train`` does by default);
- ``one arena``: ``retain_freed_host_memory(single_arena=True)`` (``--single_malloc_arena``).

Per mode: median ms per step, median minor page faults per step, how many steps faulted more
than 10k pages, how far the main heap (``sbrk``) grew after the warm-up step, and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODES = {"default": None, "retained": False, "one arena": True}


def _worker(mode: str, steps: int, quick: bool) -> dict:
    """Measure ``steps`` calls of the jitted step in this process (malloc mode set first)."""
    single_arena = MODES[mode]
    if single_arena is not None:
        from emojax.parallel import retain_freed_host_memory

        retain_freed_host_memory(single_arena=single_arena)
    import ctypes
    import resource
    import time

    import jax
    import jax.numpy as jnp

    from benchmarks.encoders import minilm_inputs
    from emojax.convert import load_minilm

    libc = ctypes.CDLL("libc.so.6")
    libc.sbrk.restype = ctypes.c_void_p
    batch, length = (4, 64) if quick else (16, 128)
    module, variables, _ = load_minilm()
    ids, mask = (jnp.asarray(a) for a in minilm_inputs(batch, length))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(module.apply(v, ids, mask) ** 2)))
    jax.block_until_ready(grad(variables))
    heap_start = libc.sbrk(0)
    faults, millis = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        jax.block_until_ready(grad(variables))
        millis.append((time.perf_counter() - start) * 1e3)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {
        "mode": mode,
        "shape": f"{batch}x{length}",
        "median_ms": statistics.median(millis),
        "median_faults": statistics.median(faults),
        "faulting_steps": sum(f > 10_000 for f in faults),
        "heap_growth_mb": (libc.sbrk(0) - heap_start) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_mode(mode: str, steps: int, quick: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.host_memory", "--worker", mode, "--steps", str(steps)]
    out = subprocess.run(cmd + ["--quick"] * quick, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"mode {mode!r} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 x 64 batch")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    parser.add_argument("--worker", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.steps, args.quick)))
        return
    rows = [_run_mode(mode, args.steps, args.quick) for mode in MODES]
    print(f"\nhost malloc modes: MiniLM-L6 fwd+bwd {rows[0]['shape']}, {args.steps} steps")
    header = (
        f"{'mode':<10} {'ms/step':>8} {'faults/step':>12} {'faulting steps':>15} "
        f"{'heap growth MB':>15} {'peak RSS MB':>12}"
    )
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<10} {r['median_ms']:8.0f} {r['median_faults']:12.0f} "
            f"{r['faulting_steps']:15d} {r['heap_growth_mb']:15.0f} {r['peak_rss_mb']:12.0f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "host_memory", "steps": args.steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
