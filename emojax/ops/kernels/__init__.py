"""C++ XLA FFI kernels for XLA:CPU, compiled on first use and cached.

Each ``*.cc`` here is one kernel family (``cpu_common.h``: their shared vector and thread-pool
helpers). :func:`ffi_targets` builds it with the machine's C++ compiler (``$CXX``, else
``c++``/``g++``/``clang++``) against the FFI headers of the installed jaxlib, with
``-march=native``, caches the shared library under ``$EMOJAX_KERNEL_CACHE`` (default
``~/.cache/emojax/kernels``) keyed by the source, compiler, flags, jaxlib and CPU, and registers
its handlers with XLA for the CPU platform.

Without a compiler, or with ``EMOJAX_CPU_KERNELS=0``, :func:`ffi_targets` returns None (and logs
why, once): callers then keep their pure-JAX path. Nothing else in emojax needs a compiler.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jaxlib

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-std=c++17", "-fPIC", "-shared")


class KernelBuildError(RuntimeError):
    """The C++ compiler failed on a kernel source (its output is in the message)."""


_OFF = ("0", "false", "no", "off")


def enabled() -> bool:
    """False when ``EMOJAX_CPU_KERNELS`` is set to 0/false/no/off (read at the first build)."""
    return os.environ.get("EMOJAX_CPU_KERNELS", "1").strip().lower() not in _OFF


def _spans_devices(array) -> bool:
    """True when ``array`` (concrete or traced) is laid out over a mesh of several devices."""
    try:
        mesh = getattr(jax.typeof(array).sharding, "mesh", None)
    except (TypeError, AttributeError):  # a Python scalar or NumPy array: one device
        return False
    return mesh is not None and not mesh.empty and mesh.size > 1


def cpu_unsharded(*arrays) -> bool:
    """True on the CPU backend outside a ``jax.set_mesh`` of several devices and for ``arrays``
    not sharded over several devices (``device_put`` with a ``NamedSharding``, or the legacy
    ``with mesh:``), where the kernels may run. Elsewhere GSPMD partitions the XLA path, and a
    custom call would be gathered onto every device instead."""
    mesh = jax.sharding.get_abstract_mesh()
    if jax.default_backend() != "cpu" or not (mesh.empty or mesh.size == 1):
        return False
    return not any(_spans_devices(a) for a in arrays)


def compiler() -> str | None:
    """The C++ compiler to use: ``$CXX`` if set, else the first of c++, g++, clang++ on PATH."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    return next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "emojax" / "kernels"
    return Path(os.environ.get("EMOJAX_KERNEL_CACHE", default))


def _cpu_id() -> str:
    """The CPU's model and feature flags (``-march=native`` code must not move between CPUs)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))]
    return "\n".join(dict.fromkeys(lines))


def _compiler_version(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cxx


def build(name: str, cxx: str | None = None) -> Path:
    """Compile ``<name>.cc`` into the cache (if not there yet) and return the library's path.

    Raises FileNotFoundError without a compiler and :class:`KernelBuildError` if it fails.
    Concurrent builders (pytest workers, hosts sharing a home) each write a temporary file and
    rename it into place, so a reader never sees a half-written library."""
    cxx = cxx or compiler()
    if cxx is None or shutil.which(cxx) is None:
        raise FileNotFoundError(f"no C++ compiler {cxx or ''} found (set $CXX, or install g++)")
    source = SOURCE_DIR / f"{name}.cc"
    include = jax.ffi.include_dir()
    key = hashlib.sha256(
        "\0".join(
            [source.read_text(), *(h.read_text() for h in sorted(SOURCE_DIR.glob("*.h")))]
            + [_compiler_version(cxx), " ".join(FLAGS), jaxlib.__version__, _cpu_id()]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [cxx, *FLAGS, f"-I{include}", str(source), "-o", tmp]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        os.unlink(tmp)
        raise KernelBuildError(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
    os.replace(tmp, target)
    return target


def _load(name: str) -> ctypes.CDLL:
    """Load the cached library; one that does not load (truncated, foreign) is built again."""
    path = build(name)
    try:
        return ctypes.cdll.LoadLibrary(str(path))
    except OSError as err:
        log.warning("rebuilding %s, which did not load: %s", path, err)
        path.unlink(missing_ok=True)
        return ctypes.cdll.LoadLibrary(str(build(name)))


def f32_call(target: str, *result_shapes: tuple[int, ...]):
    """``jax.ffi.ffi_call`` of ``target`` with float32 results of ``result_shapes`` (a tuple of
    results when there are several). Under vmap it loops: the kernels take fixed ranks."""
    results = tuple(jax.ShapeDtypeStruct(shape, "float32") for shape in result_shapes)
    return jax.ffi.ffi_call(
        target, results if len(results) > 1 else results[0], vmap_method="sequential"
    )


def with_reference_jvp(kernel_fn, reference_fn):
    """``kernel_fn`` (FFI calls, which JAX cannot differentiate) with the derivatives of
    ``reference_fn``, the same math in jnp with the same arguments and outputs.

    The values are the kernel's; every order of forward-mode derivative is the reference's, so
    the ``custom_vjp`` ops built on kernels also support ``jax.hessian`` and grad-of-grad (their
    forward and backward calls both go through here). Tangents of outputs that only feed a
    later kernel call (saved statistics) need only be consistent with that call's reference."""

    @jax.custom_jvp
    def wrapped(*args):
        return kernel_fn(*args)

    @wrapped.defjvp
    def _jvp(primals, tangents):
        _, tangent_out = jax.jvp(reference_fn, primals, tangents)
        return wrapped(*primals), tangent_out

    return wrapped


@functools.cache
def ffi_targets(name: str, symbols: tuple[str, ...]) -> dict[str, str] | None:
    """Build and load kernel ``name`` and register ``symbols`` as CPU FFI targets.

    Returns {symbol: target name} or None when the kernels are disabled or cannot be built
    (the reason is logged once; the caller falls back to XLA)."""
    if not enabled():
        return None
    try:
        library = _load(name)
    except (FileNotFoundError, KernelBuildError, OSError) as err:
        log.warning("emojax CPU kernel %r unavailable, using the XLA path: %s", name, err)
        return None
    targets = {}
    for symbol in symbols:
        target = f"emojax_{name}_{symbol}"
        jax.ffi.register_ffi_target(
            target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )
        targets[symbol] = target
    return targets
