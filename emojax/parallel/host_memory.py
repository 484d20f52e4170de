"""Keep freed host memory inside the process, so XLA:CPU does not page-fault it in every step.

XLA:CPU mallocs each execution's temporary buffer (all intermediates of the jitted step) and frees
it when the step ends. glibc serves blocks above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns them with ``munmap``; blocks on a worker thread's arena go the same way. So
every step faults in, and the kernel zeroes, the whole buffer again: MiniLM-L6 forward+backward
at batch 16 x 128 maps a 570 MB temporary per call, ~170k minor page faults (measured with
``getrusage``; ``docs/benchmarks.md``). PyTorch's many small tensors mostly reuse heap blocks.

:func:`retain_freed_host_memory` tells glibc to serve blocks from its heaps instead of ``mmap``
(``M_MMAP_MAX=0``) and to keep freed memory up to 2 GiB at the heap top (``M_TRIM_THRESHOLD``),
so the next step reuses the pages. That is enough for blocks allocated on the main thread and
for a worker thread's blocks below 64 MiB. A worker thread's larger blocks (XLA allocates the
temporary on a worker thread) need ``single_arena=True`` (``M_ARENA_MAX=1``: every thread uses
the main heap), which serialises malloc across threads: worth it for steps whose temporaries
exceed 64 MiB (MiniLM-L6 fwd+bwd at 16 x 128: 1.07 instead of 1.38 s per step), harmful for a
small model fed by a threaded pipeline (the quickstart config trained at 11-13 steps/s with it,
21-24 without it, 19 with glibc's defaults). Numbers and commands: docs/training.md and
``benchmarks/host_memory.py``. Either way the process's resident size no longer shrinks after a
peak, the heap may grow by a few temporaries before it settles (MiniLM above: peak RSS 1.97
instead of 1.49 GB), and the setting covers the whole process (PyTorch in the same process
included).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from absl import logging

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_MAX_INT = 2**31 - 1


def _glibc():
    """The process's libc when it is glibc (has ``mallopt``), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return libc if hasattr(libc, "mallopt") else None


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: do not guess
        return False


def retain_freed_host_memory(*, single_arena: bool = False) -> bool:
    """Make glibc keep freed memory for reuse (see module docstring). Idempotent.

    ``single_arena``: also route every thread to the main heap, so that worker threads' blocks
    above 64 MiB are kept too; call it before anything starts a JAX backend (threads that already
    own a malloc arena keep it). Returns True when applied, False where it does not apply (not
    Linux/glibc), and raises RuntimeError if glibc rejects a setting.
    """
    libc = _glibc()
    if libc is None:
        logging.info("retain_freed_host_memory: not glibc, allocator left as it is")
        return False
    if single_arena and _backends_started():
        logging.warning(
            "retain_freed_host_memory() after JAX started its backends: threads that already "
            "have a malloc arena still mmap large blocks; call it first thing in the program"
        )
    settings = [("M_ARENA_MAX", _M_ARENA_MAX, 1)] if single_arena else []
    settings += [("M_MMAP_MAX", _M_MMAP_MAX, 0), ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, _MAX_INT)]
    for name, param, value in settings:
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            raise RuntimeError(f"glibc mallopt({name}, {value}) failed")
    return True
