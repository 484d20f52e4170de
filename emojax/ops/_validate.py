"""Validation of input *values* without host synchronisation (ops, losses and nn share it).

Design, the same everywhere in emojax:

* Static properties (dtype, rank, shapes, Python hyper-parameters such as ``axis`` or
  ``reduction``) are checked at trace time and raise ``TypeError`` / ``ValueError`` under
  ``jax.jit`` too.
* Data properties (finiteness, ``alpha >= 1``, label / token / node ids in range, a temperature
  ``> 0``) depend on values. :func:`check` handles them by where the value lives:

  - **Host values** (Python numbers, NumPy arrays and scalars, lists / tuples of them) are
    checked on the host with NumPy and raise ``ValueError`` naming the argument. No device is
    touched, so this costs no transfer; it also runs at trace time for NumPy constants closed
    over by a jitted function.
  - **jax Arrays are never inspected by default.** Reading a device array on the host is a
    device->host transfer that blocks until the device has computed it (a host sync that stalls
    an eager training loop), and under ``jit`` the values do not exist at all. A bad value then
    flows through: a non-finite input gives a non-finite loss (the trainer's NaN guard sees it),
    an ``alpha < 1`` is used as 1, an out-of-range id is clamped or dropped by the gather /
    scatter. Validate data where it is built (NumPy, in the input pipeline), or:
  - **Opt in with checkify**: inside ``with emojax.ops.device_checks():`` every such check on a
    traced value is emitted as ``jax.experimental.checkify.debug_check`` with the same message.
    Functionalise the function with ``checkify.checkify`` to get the failures back as an
    ``Error`` (``err.throw()`` raises ``JaxRuntimeError`` with the message), jitted or not::

        with emojax.ops.device_checks():
            err, loss = jax.jit(checkify.checkify(loss_fn))(x, y)
        err.throw()

    The flag is read when a function is traced: enable it before the first trace (or build a
    fresh ``jax.jit``). It is off by default because a jitted computation holding checks has an
    effect that takes it off JAX's C++ fast dispatch path (about 0.1 ms more per call, measured
    on CPU), and because un-functionalised checks are dropped anyway.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

_HOST_SCALARS = (bool, int, float, complex, np.generic, np.ndarray)
_state = threading.local()


def is_host(x) -> bool:
    """True for Python numbers, NumPy arrays / scalars and (nested) lists / tuples of them."""
    if isinstance(x, (list, tuple)):
        return all(is_host(v) for v in x)
    return isinstance(x, _HOST_SCALARS)


def device_checks_enabled() -> bool:
    return getattr(_state, "enabled", False)


@contextlib.contextmanager
def device_checks(enabled: bool = True) -> Iterator[None]:
    """Emit the value checks on traced arrays as ``checkify.debug_check`` (see module docs).

    Use with ``checkify.checkify``; the flag is read at trace time, per thread.
    """
    previous = device_checks_enabled()
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = previous


def _staged(x) -> bool:
    """x is traced, or ops on it would be staged into an enclosing trace (checkify's closure)."""
    if isinstance(x, jax.core.Tracer):
        return True
    try:
        from jax._src import core as _core  # private: no public "am I tracing" query exists

        return not _core.trace_state_clean()
    except Exception:  # pragma: no cover - a JAX without it: traced values only
        return False


Predicate = Callable[..., object]


def check(x, ok: Predicate, message: str, error=ValueError, **details: Predicate) -> None:
    """Check a data property of ``x`` without a host sync.

    ``ok(xp, a)`` returns a scalar bool, ``details[k](xp, a)`` a scalar for ``{k}`` in
    ``message``; ``xp`` is ``numpy`` for host values and ``jax.numpy`` for traced ones. ``None``
    and empty arrays pass. Host values raise ``error(message.format(...))``; jax Arrays are not
    read (see the module docstring for the ``device_checks`` opt-in).
    """
    if x is None:
        return
    if is_host(x):
        a = np.asarray(x)
        if a.size and not bool(ok(np, a)):
            raise error(message.format(**{k: f(np, a) for k, f in details.items()}))
        return
    if not device_checks_enabled() or not _staged(x):
        return
    a = jnp.asarray(x)
    if a.size:
        pred = jnp.asarray(ok(jnp, a), bool).reshape(())
        fmt = {k: jnp.asarray(f(jnp, a)) for k, f in details.items()}
        checkify.debug_check(pred, message, **fmt)
