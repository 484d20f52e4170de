"""Shared benchmark helpers: timing, the side-by-side table, JSON output.

Every benchmark prints rows ``name | emojax ms | peer ms | ratio peer/emojax`` measured in the
same process, so the ratio is meaningful even on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import jax


@dataclass
class Row:
    name: str
    emojax_ms: float
    peer_ms: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.peer_ms is None else self.peer_ms / self.emojax_ms


def parse_args(description: str, *, host_memory: bool = False) -> argparse.Namespace:
    """``--quick`` and ``--json``; with ``host_memory``, also ``--default-malloc`` and, unless it is
    given, ``emojax.parallel.retain_freed_host_memory(single_arena=True)`` as
    ``emojax train --single_malloc_arena`` does (call this before any JAX backend starts; it
    applies to the whole process, the PyTorch peer included)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    if host_memory:
        parser.add_argument(
            "--default-malloc",
            action="store_true",
            help="leave glibc malloc as it is (default: retain freed memory, one arena)",
        )
    args = parser.parse_args()
    if host_memory and not args.default_malloc:
        from emojax.parallel import retain_freed_host_memory

        retain_freed_host_memory(single_arena=True)
    return args


def block(out):
    """Wait for JAX arrays (any pytree); torch results are synchronous on CPU."""
    return jax.block_until_ready(out)


def time_ms(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds (results are blocked on)."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved_ms(
    fns: dict[str, Callable[[], object]], rounds: int, block: int = 1
) -> dict[str, float]:
    """Median ms of each fn, measured in alternation (one warm-up call each first) so that every
    fn sees the same background load. ``block > 1``: each turn runs a fn ``block // 4`` times
    untimed, then keeps the median of ``block`` calls (for ops of a few ms or less, whose first
    calls after the other library's would share the cores with its still-spinning threads)."""
    for fn in fns.values():
        time_ms(fn, repeats=1, warmup=1)
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_ms(fn, repeats=block, warmup=block // 4))
    return {name: float(statistics.median(v)) for name, v in samples.items()}


def machine() -> str:
    devices = jax.devices()
    cpu = f"{platform.machine()} {platform.processor() or ''}".strip()
    return f"{cpu}, jax {jax.__version__} on {devices[0].platform} x{len(devices)}"


def print_table(title: str, rows: list[Row], peer: str = "torch") -> None:
    print(f"\n{title}  ({machine()})")
    header = f"{'case':<44} {'emojax ms':>10} {peer + ' ms':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        peer_ms = "-" if row.peer_ms is None else f"{row.peer_ms:10.2f}"
        ratio = "-" if row.ratio is None else f"{row.ratio:6.2f}x"
        extra = "  " + " ".join(f"{k}={v}" for k, v in row.extra.items()) if row.extra else ""
        print(f"{row.name:<44} {row.emojax_ms:10.2f} {peer_ms:>10} {ratio:>7}{extra}")


def write_json(path: str | None, title: str, rows: list[Row]) -> None:
    if path is None:
        return
    payload = {
        "benchmark": title,
        "machine": machine(),
        "rows": [asdict(r) | {"ratio": r.ratio} for r in rows],
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def row_dicts(rows: list[Row]) -> list[dict]:
    """Rows as JSON-able dicts (name, both times, the ratio, and each row's extras)."""
    return [
        {"name": r.name, "emojax_ms": r.emojax_ms, "peer_ms": r.peer_ms, "ratio": r.ratio} | r.extra
        for r in rows
    ]


def step_extra(compiled, compile_s: float, ms: dict[str, float]) -> dict:
    """A step row's extras: compile seconds, XLA's FLOP count of the compiled step and the rate
    each peer reaches on it (``{peer}_gflops``, GFLOP/s; one count for all peers: the same model
    and math), so a ratio can be read against what the cores can do."""
    from emojax.train.observe import compiled_flops

    extra = {"compile_s": round(compile_s, 1)}
    flops = compiled_flops(compiled)
    if flops:
        extra["gflop"] = round(flops / 1e9, 1)
        extra |= {f"{peer}_gflops": round(flops / 1e6 / t, 1) for peer, t in ms.items()}
    return extra


def report_train_step(title: str, row: Row, size, losses: dict, parts: dict, compile_s: float):
    """Print a train-step comparison (table, sizes, both peers' losses of two steps) and return
    its JSON section. ``size``: a dataclass with ``describe()``; ``losses[peer]``: the two
    steps' losses; ``parts[peer]``: step 1's loss terms."""
    import dataclasses

    print_table(title, [row])
    print(f"sizes: {size.describe()}")
    for name in ("emojax", "torch"):
        print(
            f"loss {name:>6}: step 1 {losses[name][0]:.6f}, step 2 {losses[name][1]:.6f}  "
            "(step 1: " + ", ".join(f"{k} {v:.6f}" for k, v in parts[name].items()) + ")"
        )
    return {
        "shape": dataclasses.asdict(size),
        "losses": losses,
        "parts": parts,
        "compile_s": compile_s,
        "rows": row_dicts([row]),
    }


def run_sections(title: str, sections: dict, argv: list[str] | None = None) -> dict:
    """``main`` of a benchmark made of sections ``name -> (quick: bool) -> dict``: flags
    ``--quick``, ``--json PATH``, ``--only NAME``; returns (and writes) the JSON payload."""
    import pathlib

    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--only", default=None, choices=sorted(sections), help="one section")
    args = parser.parse_args(argv)
    payload = {"benchmark": title, "machine": machine(), "quick": args.quick, "sections": {}}
    for name, section in sections.items():
        if args.only in (None, name):
            payload["sections"][name] = section(args.quick)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=2))
    return payload


def first_two_steps(runs: dict[str, Callable[[], tuple]]) -> tuple[dict, dict]:
    """Run each peer's step twice (alternating) before timing: ``(losses, parts)`` with
    ``losses[peer] = [step 1, step 2]`` and ``parts[peer]`` step 1's loss terms; each run
    returns ``(loss, {term: value})``."""
    losses, parts = {name: [] for name in runs}, {}
    for _ in range(2):
        for name, run in runs.items():
            loss, terms = block(run())
            losses[name].append(float(loss))
            parts.setdefault(name, {k: float(v) for k, v in terms.items()})
    return losses, parts
