"""emojax.parallel.retain_freed_host_memory: the page faults it removes, and its error paths."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from emojax.parallel import host_memory

# A jitted step whose temporary buffer (two 64 MB intermediates kept apart by barriers) is far
# above glibc's mmap threshold, as a transformer step's is. Prints the median minor page faults
# per call over calls 10-39. Retained, the heap grows by whole temporaries for a number of calls
# that varies run to run (1 to ~10 in 30 calls here: XLA's aligned allocations cannot reuse a
# freed slot that a small allocation has since nicked, until neighbouring slots coalesce), then
# stops faulting; the median over 30 settled calls is robust to those stragglers.
_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    if sys.argv[1] == "retain":
        from emojax.parallel import retain_freed_host_memory
        assert retain_freed_host_memory(single_arena=True)
    import jax, jax.numpy as jnp

    @jax.jit
    def step(x):
        y = jax.lax.optimization_barrier(jnp.sin(x))
        z = jax.lax.optimization_barrier(jnp.cos(y) * y)
        return jnp.sum(z - y)

    x = jnp.ones((16 * 1024 * 1024,), jnp.float32)
    for _ in range(10):
        step(x).block_until_ready()
    faults = []
    for _ in range(30):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step(x).block_until_ready()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"faults_per_call": sorted(faults)[len(faults) // 2]}))
    """
)


def _faults_per_call(mode: str) -> float:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["faults_per_call"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_retained_memory_removes_the_per_step_page_faults():
    default = _faults_per_call("default")
    if default < 16_000:  # this allocator already reuses the 128 MB temp: nothing to show
        pytest.skip(f"default malloc faults only {default:.0f} pages per call here")
    retained = _faults_per_call("retain")
    # 128 MB of temporaries = 32k pages re-faulted per call by default; kept, almost none
    assert retained < 0.05 * default, (default, retained)


class _FakeLibc:
    def __init__(self, result: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param, value):
        self.calls.append((param.value, value.value))
        return self.result


def test_sets_mmap_and_trim_and_optionally_arena_parameters(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory, "_glibc", lambda: libc)
    assert host_memory.retain_freed_host_memory() is True
    assert libc.calls == [(-4, 0), (-1, 2**31 - 1)]
    libc.calls.clear()
    assert host_memory.retain_freed_host_memory(single_arena=True) is True
    assert libc.calls == [(-8, 1), (-4, 0), (-1, 2**31 - 1)]
    assert host_memory.retain_freed_host_memory(single_arena=True) is True  # idempotent
    assert libc.calls[3:] == libc.calls[:3]


def test_rejected_setting_is_an_error(monkeypatch):
    monkeypatch.setattr(host_memory, "_glibc", lambda: _FakeLibc(result=0))
    with pytest.raises(RuntimeError, match="M_ARENA_MAX"):
        host_memory.retain_freed_host_memory(single_arena=True)
    with pytest.raises(RuntimeError, match="M_MMAP_MAX"):
        host_memory.retain_freed_host_memory()


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("", ""))
    assert host_memory._glibc() is None
    assert host_memory.retain_freed_host_memory() is False


def test_warns_when_jax_backends_already_started(monkeypatch):
    import jax

    jax.devices()  # make sure a backend is up
    warnings = []
    monkeypatch.setattr(host_memory, "_glibc", lambda: _FakeLibc())
    monkeypatch.setattr(host_memory.logging, "warning", lambda msg, *a: warnings.append(msg))
    host_memory.retain_freed_host_memory()  # per-thread arenas do not matter without single_arena
    assert not warnings
    host_memory.retain_freed_host_memory(single_arena=True)
    assert warnings and "first thing" in warnings[0]
