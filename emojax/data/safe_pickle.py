"""Unpickle data files without ever running code from them.

A pickle is a program: every ``GLOBAL`` / ``STACK_GLOBAL`` opcode names a Python object
(``module.name``) that the ``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ`` and ``BUILD`` opcodes then
call. :func:`safe_load` resolves those names from an explicit allow-list of exact
``(module, name)`` pairs (no prefixes, no dotted attribute paths, nothing imported) and refuses
every other global with :class:`UnsafePickleError`, *before* anything is called. What is
allowed is what preprocessed feature pickles (IEMOCAP/MOSEI from DialogueGCN, COGMEN, Joyful)
hold: numpy arrays, numpy scalars and dtypes (numpy 1.x and 2.x names, pickle protocols 0-5),
plain containers, and the authors' data-holder class (``cogmen.Sample.Sample`` etc.), which
loads as an inert :class:`Record` that only stores attributes.

    from emojax.data.safe_pickle import safe_load
    data = safe_load("data_iemocap.pkl")
    data = safe_load(f, extra_allowed=[("mypkg.features", "Utterance")])  # another record class

The allow-list (``ALLOWED_GLOBALS``) maps each name to what it loads as:

* numpy, both the 1.x and 2.x spellings (``numpy.core.*`` / ``numpy._core.*``), as guards:
  ``numpy.dtype`` (only ``dtype(str, align, copy)`` plus numpy's version 3/4 state);
  ``numpy.ndarray`` (only as the type argument of ``_reconstruct``; calling it is refused);
  ``numpy._core.multiarray._reconstruct`` (only ``_reconstruct(numpy.ndarray, shape, code)``
  plus the state ``(version, shape, dtype, is_fortran, data)``); ``...multiarray.scalar``;
  ``...numeric._frombuffer`` (protocol 5, non-object dtypes only). numpy's own versions are
  never handed file data: ``numpy.ndarray(shape, "O", buffer=...)`` and a ``dtype`` state
  with forged flags make object arrays whose elements are pointers read from the file (a
  crash at best). Dtypes and arrays are rebuilt through public constructors (``np.dtype`` of
  a string, field list or ``(base, shape)``; ``np.frombuffer`` of exactly ``size * itemsize``
  bytes of a non-object dtype; element-wise fill of object arrays from their list), at the end
  of the load (:meth:`SafeUnpickler.load` swaps the placeholders for the results).
* ``builtins`` ``set``, ``frozenset``, ``bytes``, ``bytearray``, ``complex``, ``slice``,
  ``object`` (Python 2 spellings ``__builtin__.*`` / ``copy_reg.*`` are mapped first, as
  ``pickle`` itself does); ``collections.OrderedDict``
* ``_codecs.encode``, guarded: only ``encode(str, "latin1")``, which is how protocol 0-2
  pickles spell ``bytes`` (e.g. a numpy array's raw data)
* ``copyreg._reconstructor``, guarded: only ``_reconstructor(<record class>, object, None)``,
  how protocols 0-1 pickle an instance of a plain class; any other class or base is refused
  (an arbitrary base would run ``base.__new__`` / ``base.__init__``)
* ``RECORD_GLOBALS`` -> :class:`Record`: ``Sample`` under ``cogmen.Sample``, ``cogmen``,
  ``joyful.Sample``, ``joyful``, ``corect.Sample``, ``corect``, ``Sample`` and ``__main__``

Everything reachable from these is inert: none of them imports a module, evaluates a string,
opens a file, looks up an attribute by a name taken from the file, or trusts bytes from the
file as pointers, and what they return cannot be rewired by a later ``BUILD`` (the guards
and the record class are immutable; records refuse ``__dunder__`` attributes). Errors:
:class:`UnsafePickleError` (a ``pickle.UnpicklingError``) naming the global and the file.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import os
import pickle
import pickletools
import types
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import IO, Any

__all__ = [
    "ALLOWED_GLOBALS",
    "RECORD_GLOBALS",
    "Record",
    "SafeUnpickler",
    "UnsafePickleError",
    "safe_load",
    "safe_loads",
]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list, or calls a guarded one with arguments
    outside its safe use. Raised before the refused object is called."""

    def __init__(self, global_name: str, source: str, detail: str = ""):
        self.global_name = global_name
        self.source = source
        if detail:
            message = f"global {global_name!r} is not allowed here: {detail}"
        else:
            message = (
                f"global {global_name!r} is not allowed; a safe pickle holds only numpy arrays, "
                "plain containers and known record classes (see emojax.data.safe_pickle)"
            )
        super().__init__(f"refusing to unpickle {source}: {message}")


class _Refused(Exception):
    """Raised by a guard during a load; :meth:`SafeUnpickler.load` adds the file's name."""

    def __init__(self, global_name: str, detail: str):
        super().__init__(global_name, detail)
        self.global_name, self.detail = global_name, detail


class _Frozen(type):
    """Metaclass of our loadable classes: their attributes cannot be rebound by a pickle."""

    def __setattr__(cls, name, value):
        raise AttributeError(f"{cls.__name__} is read-only")

    def __delattr__(cls, name):
        raise AttributeError(f"{cls.__name__} is read-only")


class Record(metaclass=_Frozen):
    """Stand-in for an allowed pickled data class (e.g. COGMEN's ``Sample``): attributes only.

    ``vars(record)`` is the pickled object's ``__dict__``. Attribute names must be plain
    (no ``__dunder__`` names, which could shadow methods such as ``__setstate__``).
    """

    def __init__(self, *args, **kwargs):  # reached only if the pickle calls the class
        self.__setstate__(kwargs)
        if args:
            self.__dict__["args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ values)
            parts = state
        elif state is None or isinstance(state, dict):
            parts = (state,)
        else:
            raise pickle.UnpicklingError(
                f"record state must be a dict or (dict, dict), got {type(state).__name__}"
            )
        for part in parts:
            if part is None:
                continue
            if not isinstance(part, dict):
                raise pickle.UnpicklingError(f"record state holds a {type(part).__name__}")
            for key, value in part.items():
                if not isinstance(key, str) or (key.startswith("__") and key.endswith("__")):
                    raise pickle.UnpicklingError(f"record attribute name {key!r} is not allowed")
                self.__dict__[key] = value

    def __repr__(self):
        fields = ", ".join(f"{k}={type(v).__name__}" for k, v in self.__dict__.items())
        return f"Record({fields})"


class _Guard(metaclass=_Frozen):
    """A callable allowed global that checks its arguments; no instance state to rebind."""

    __slots__ = ()
    name = ""


class _Latin1Encode(_Guard):
    """``_codecs.encode`` as protocols 0-2 use it for bytes: ``encode(str, "latin1")`` only."""

    __slots__ = ()
    name = "_codecs.encode"

    def __call__(self, obj, encoding="utf-8", errors="strict"):
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _Refused(
                self.name,
                f"allowed only as encode(str, 'latin1'), called as "
                f"encode({type(obj).__name__}, {encoding!r}, {errors!r})",
            )
        return obj.encode("latin1")


class _Reconstructor(_Guard):
    """``copyreg._reconstructor(cls, object, None)`` for a record class only (protocols 0-1)."""

    __slots__ = ()
    name = "copyreg._reconstructor"

    def __call__(self, cls, base, state):
        if not (isinstance(cls, type) and issubclass(cls, Record) and base is object):
            raise _Refused(
                self.name,
                f"allowed only as _reconstructor(<record class>, object, None), called with "
                f"cls={_describe(cls)}, base={_describe(base)}",
            )
        if state is not None:
            raise _Refused(self.name, "allowed only with state None")
        return object.__new__(cls)


def _describe(obj) -> str:
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return type(obj).__name__


# ----------------------------------------------------------------------------------- numpy
#
# numpy's own reconstruction is not safe to hand file data: ``numpy.ndarray(shape, "O",
# buffer=b"...")`` makes an object array whose "objects" are pointers read from the file, and
# ``dtype.__setstate__`` accepts flags that turn an object dtype into one whose raw bytes are
# trusted as pointers (both crash on use; with crafted addresses, worse). So the numpy globals
# load as guards: ``numpy.dtype(...)`` and ``_reconstruct(...)`` return inert placeholders that
# record their arguments and state, and :meth:`SafeUnpickler.load` replaces them at the end
# with dtypes and arrays built through numpy's public constructors from checked values
# (``np.dtype`` of a string or field list, ``np.frombuffer`` of non-object data of exactly the
# right length, element-wise fill of object arrays). ``numpy.ndarray`` itself is not callable.

_RECONSTRUCT = "numpy._core.multiarray._reconstruct"  # the name errors use (numpy 2 spelling)
_ALIGNED_STRUCT = 0x80  # NPY_ALIGNED_STRUCT in a dtype state's flags


def _need(ok: bool, name: str, detail: str) -> None:
    if not ok:
        raise _Refused(name, detail)


def _int(x, name: str, what: str) -> int:
    _need(type(x) is int, name, f"{what} must be an int, got {type(x).__name__}")
    return x


def _shape(x, name: str) -> tuple[int, ...]:
    if type(x) is int:
        x = (x,)
    _need(
        type(x) is tuple and all(type(d) is int and d >= 0 for d in x),
        name,
        f"a shape must be a tuple of non-negative ints, got {x!r}"[:200],
    )
    return x


class _DTypeProxy:
    """What ``numpy.dtype(spec, align, copy)`` loads as until the end of the load."""

    __slots__ = ("_args", "_state", "_dtype")

    def __init__(self, args: tuple):
        self._args, self._state, self._dtype = args, None, None

    def __setstate__(self, state):
        _need(self._state is None and self._dtype is None, "numpy.dtype", "state set twice")
        self._state = state

    def dtype(self):
        if self._dtype is None:
            self._dtype = _dtype_from(self._args, self._state)
        return self._dtype


def _as_dtype(x, name: str):
    import numpy as np

    if isinstance(x, _DTypeProxy):
        return x.dtype()
    _need(isinstance(x, np.dtype), name, f"expected a pickled numpy.dtype, got {type(x).__name__}")
    return x


def _dtype_from(args: tuple, state):
    """A dtype from ``numpy.dtype(*args)`` + ``__setstate__(state)``, via public constructors."""
    import numpy as np

    name = "numpy.dtype"
    spec = args[0]
    align = bool(args[1]) if len(args) > 1 else False
    if state is None:
        return _make_dtype(lambda: np.dtype(spec, align=align))
    _need(
        type(state) is tuple and len(state) in (8, 9) and type(state[0]) is int,
        name,
        "the state must be numpy's version 3 or 4 dtype state",
    )
    _need(
        state[0] in (3, 4),
        name,
        "the state must be numpy's version 3 or 4 dtype state",
    )
    _, endian, subarray, names, fields, elsize, _alignment, flags = state[:8]
    extra = state[8] if len(state) == 9 else None
    metadata, datetime = extra if type(extra) is tuple else (extra, None)
    _need(type(endian) is str and endian in "<>|=" and len(endian) == 1, name, "byte order")
    if subarray is not None:
        _need(
            type(subarray) is tuple and len(subarray) == 2, name, "subarray must be (dtype, shape)"
        )
        base, shape = _as_dtype(subarray[0], name), _shape(subarray[1], name)
        dtype = _make_dtype(lambda: np.dtype((base, shape)))
    elif names is not None:
        _need(
            type(names) is tuple and all(type(n) is str for n in names) and type(fields) is dict,
            name,
            "structured dtype needs a tuple of field names and a dict of fields",
        )
        formats, offsets, titles = [], [], []
        for field in names:
            entry = fields.get(field)
            _need(type(entry) is tuple and len(entry) in (2, 3), name, f"field {field!r}")
            formats.append(_as_dtype(entry[0], name))
            offsets.append(_int(entry[1], name, f"offset of field {field!r}"))
            title = entry[2] if len(entry) == 3 else None
            _need(title is None or type(title) is str, name, f"title of field {field!r}")
            titles.append(title)
        layout = {"names": list(names), "formats": formats, "offsets": offsets, "titles": titles}
        layout["itemsize"] = _int(elsize, name, "itemsize")
        aligned = bool(_int(flags, name, "flags") & _ALIGNED_STRUCT)
        dtype = _make_dtype(lambda: np.dtype(layout, align=aligned))
    else:
        _need(fields is None, name, "fields without names")
        if datetime is not None:  # (unit, count, 1, 1) of datetime64 / timedelta64
            _need(
                spec in ("M8", "m8") and type(datetime) is tuple and len(datetime) == 4,
                name,
                "datetime metadata on a non-datetime dtype",
            )
            unit, count = datetime[0], _int(datetime[1], name, "datetime unit count")
            unit = unit.decode("ascii") if type(unit) is bytes else unit
            _need(type(unit) is str and unit.isalpha(), name, f"datetime unit {unit!r}")
            if unit != "generic":
                spec = f"{spec}[{count if count != 1 else ''}{unit}]"
        prefix = endian if endian in "<>" else ""
        dtype = _make_dtype(lambda: np.dtype(prefix + spec, align=align))
    _need(metadata is None or type(metadata) is dict, name, "metadata must be a dict")
    if metadata:
        simple = dtype
        dtype = _make_dtype(lambda: np.dtype(simple, metadata=dict(metadata)))
    elsize = _int(elsize, name, "itemsize")
    _need(elsize in (-1, dtype.itemsize), name, f"itemsize {elsize} != {dtype.itemsize}")
    return dtype


def _make_dtype(build):
    try:
        return build()
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise pickle.UnpicklingError(f"invalid numpy dtype in the pickle: {e}") from None


class _ArrayProxy:
    """What ``_reconstruct(ndarray, ...)`` loads as; becomes an array at the end of the load."""

    __slots__ = ("_state", "_array")

    def __init__(self):
        self._state, self._array = None, None

    def __setstate__(self, state):
        _need(self._state is None and self._array is None, _RECONSTRUCT, "array state set twice")
        _need(
            type(state) is tuple and len(state) in (4, 5),
            _RECONSTRUCT,
            "the array state must be (version, shape, dtype, is_fortran, data)",
        )
        self._state = state

    def array(self, finish):
        if self._array is None:
            _need(self._state is not None, _RECONSTRUCT, "array without state")
            self._array, self._state = _array_from_state(self._state, finish), None
        return self._array


def _array_from_state(state: tuple, finish):
    import numpy as np

    name = _RECONSTRUCT
    if len(state) == 5:
        _need(type(state[0]) is int and state[0] in (0, 1), name, "array state version")
        state = state[1:]
    shape, dtype, fortran, data = state
    shape, dtype = _shape(shape, name), _as_dtype(dtype, name)
    _need(type(fortran) in (bool, int), name, "is_fortran must be a bool")
    size = 1
    for d in shape:
        size *= d
    if dtype.hasobject:  # numpy pickles these as a list of the elements, in C order
        _need(type(data) is list and len(data) == size, name, f"object data for {size} items")
        flat = np.empty(size, dtype)
        for i, item in enumerate(data):
            flat[i] = finish(item)
        array = flat.reshape(shape)
        return np.asfortranarray(array) if fortran and array.ndim > 1 else array
    return _array_from_bytes(data, dtype, shape, "F" if fortran else "C", size, name)


def _array_from_bytes(data, dtype, shape, order: str, size: int, name: str):
    import numpy as np

    if type(data) is str:  # Python 2 pickles, read with encoding="latin1"
        data = data.encode("latin1")
    _need(isinstance(data, (bytes, bytearray)), name, f"array data is a {type(data).__name__}")
    _need(
        len(data) == size * dtype.itemsize,
        name,
        f"{len(data)} bytes of array data for {size} items of {dtype.itemsize} bytes",
    )
    if size == 0 or dtype.itemsize == 0:
        return np.zeros(shape, dtype, order=order)
    return np.frombuffer(data, dtype, count=size).reshape(shape, order=order).copy(order="K")


class _NDArrayType(_Guard):
    """``numpy.ndarray``: only a marker passed to ``_reconstruct``; never called."""

    __slots__ = ()
    name = "numpy.ndarray"

    def __call__(self, *args):
        raise _Refused(self.name, "allowed only as the array type given to _reconstruct")


class _DTypeGuard(_Guard):
    """``numpy.dtype(spec: str, align=False, copy=False)`` -> a placeholder."""

    __slots__ = ()
    name = "numpy.dtype"

    def __call__(self, *args):
        _need(
            1 <= len(args) <= 3 and type(args[0]) is str,
            self.name,
            "allowed only as dtype(str, align, copy)",
        )
        return _DTypeProxy(args)


class _ReconstructGuard(_Guard):
    """``_reconstruct(numpy.ndarray, shape, typecode)`` -> a placeholder filled by BUILD."""

    __slots__ = ()
    name = _RECONSTRUCT

    def __call__(self, subtype, shape, typecode):
        _need(
            subtype is _NDARRAY and isinstance(typecode, (str, bytes)),
            self.name,
            f"allowed only as _reconstruct(numpy.ndarray, shape, typecode), got "
            f"subtype={_describe(subtype)}",
        )
        return _ArrayProxy()


class _ScalarGuard(_Guard):
    """``scalar(dtype, data)``: a numpy scalar from exactly ``itemsize`` bytes (or an object)."""

    __slots__ = ()
    name = "numpy._core.multiarray.scalar"

    def __call__(self, dtype, data):
        import numpy as np

        dtype = _as_dtype(dtype, self.name)
        if dtype.hasobject:
            _need(
                dtype.kind == "O" and dtype.names is None and dtype.subdtype is None,
                self.name,
                "allowed only for plain object or non-object dtypes",
            )
            return data
        array = _array_from_bytes(data, dtype, (1,), "C", 1, self.name)
        return array[0] if dtype.itemsize else np.zeros((), dtype)[()]


class _FromBufferGuard(_Guard):
    """``_frombuffer(buffer, dtype, shape, order)`` (protocol 5) for non-object dtypes."""

    __slots__ = ()
    name = "numpy._core.numeric._frombuffer"

    def __call__(self, buffer, dtype, shape, order):
        import numpy as np

        dtype, shape = _as_dtype(dtype, self.name), _shape(shape, self.name)
        _need(not dtype.hasobject, self.name, "not allowed for a dtype holding objects")
        _need(type(order) is str and order in ("C", "F"), self.name, "order must be 'C' or 'F'")
        size = 1
        for d in shape:
            size *= d
        _need(isinstance(buffer, (bytes, bytearray)), self.name, "buffer must be bytes")
        _need(len(buffer) == size * dtype.itemsize, self.name, "buffer size != array size")
        if size == 0 or dtype.itemsize == 0:
            return np.zeros(shape, dtype, order=order)
        return np.frombuffer(buffer, dtype, count=size).reshape(shape, order=order)


_NDARRAY = _NDArrayType()


def _numpy_globals() -> dict[tuple[str, str], Any]:
    table = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DTypeGuard()}
    reconstruct, scalar, frombuffer = _ReconstructGuard(), _ScalarGuard(), _FromBufferGuard()
    for core in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x spellings
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


def _finish(obj, done: dict):
    """Replace the numpy placeholders in a loaded object graph by real dtypes and arrays."""
    kind = type(obj)
    if kind in _LEAF_TYPES:
        return obj
    key = id(obj)
    if key in done:
        return done[key][1]
    done[key] = (obj, obj)  # provisional, for cycles (lists/dicts are patched in place)
    new = obj
    if kind is _ArrayProxy:
        new = obj.array(lambda x: _finish(x, done))
    elif kind is _DTypeProxy:
        new = obj.dtype()
    elif kind is list:
        for i, item in enumerate(obj):
            fixed = _finish(item, done)
            if fixed is not item:
                obj[i] = fixed
    elif kind is dict or kind is OrderedDict:
        items = [(_finish(k, done), _finish(v, done)) for k, v in obj.items()]
        if any(a is not k or b is not v for (a, b), (k, v) in zip(items, obj.items(), strict=True)):
            obj.clear()
            obj.update(items)
    elif kind is tuple or kind is set or kind is frozenset:
        items = [_finish(item, done) for item in obj]
        if any(a is not b for a, b in zip(items, obj, strict=True)):
            new = kind(items)
    elif kind is slice:
        parts = [_finish(x, done) for x in (obj.start, obj.stop, obj.step)]
        new = slice(*parts)
    elif isinstance(obj, Record):
        state = vars(obj)
        for k, v in state.items():
            state[k] = _finish(v, done)
    done[key] = (obj, new)
    return new


_LEAF_TYPES = frozenset({str, bytes, bytearray, int, float, complex, bool, type(None)})


#: The data-holder classes of the preprocessed-feature papers, loaded as :class:`Record`.
RECORD_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    (module, "Sample")
    for module in (
        "cogmen.Sample",
        "cogmen",
        "joyful.Sample",
        "joyful",
        "corect.Sample",
        "corect",
        "Sample",
        "__main__",
    )
)

#: ``(module, name)`` -> the object it loads as. Read-only; extend per call with ``extra_allowed``.
ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType(
    {
        **_numpy_globals(),
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("builtins", "object"): object,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): _Latin1Encode(),
        ("copyreg", "_reconstructor"): _Reconstructor(),
        **{key: Record for key in RECORD_GLOBALS},
    }
)


def _allowed_table(extra_allowed) -> Mapping[tuple[str, str], Any]:
    if not extra_allowed:
        return ALLOWED_GLOBALS
    if isinstance(extra_allowed, Mapping):
        extra = dict(extra_allowed)
    else:
        extra = {}
        for item in extra_allowed:
            if isinstance(item, str):
                module, _, name = item.rpartition(".")
            else:
                module, name = item
            extra[(module, name)] = Record
    for key in extra:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(s, str) for s in key)):
            raise TypeError(f"extra_allowed keys must be (module, name) string pairs, got {key!r}")
    return {**ALLOWED_GLOBALS, **extra}


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only answers from an allow-list."""

    def __init__(self, file, *, source: str | None = None, extra_allowed=(), **kwargs):
        kwargs.setdefault("encoding", "latin1")  # Python 2 pickles of numpy arrays need it
        super().__init__(file, **kwargs)
        self._file = file
        self._source = source or str(getattr(file, "name", "<pickle stream>"))
        self._allowed = _allowed_table(extra_allowed)

    def find_class(self, module, name):
        key = (module, name)
        # Python 2 names (__builtin__.set, copy_reg._reconstructor), mapped as pickle does.
        if key in _compat_pickle.NAME_MAPPING:
            key = _compat_pickle.NAME_MAPPING[key]
        elif module in _compat_pickle.IMPORT_MAPPING:
            key = (_compat_pickle.IMPORT_MAPPING[module], name)
        try:
            return self._allowed[key]
        except (KeyError, TypeError):
            pass
        raise UnsafePickleError(f"{module}.{name}", self._source)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids (PERSID opcodes) are not allowed")

    def load(self):
        if copyreg._extension_registry or copyreg._extension_cache:
            self._refuse_extension_codes()
        try:
            return _finish(super().load(), {})
        except _Refused as e:
            raise UnsafePickleError(e.global_name, self._source, e.detail) from None
        except UnsafePickleError:
            raise
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(f"{self._source}: {e}") from None

    def _refuse_extension_codes(self):
        # EXT1/2/4 opcodes name a global by a code from copyreg's extension registry, and
        # pickle answers a code seen before from a process-wide cache *without* asking
        # find_class. Nothing registers codes by default; where something has, scan first.
        file = self._file
        if not (hasattr(file, "seekable") and file.seekable()):
            raise pickle.UnpicklingError(
                f"refusing to unpickle {self._source}: copyreg extension codes are registered "
                "in this process and the stream cannot be scanned first"
            )
        start = file.tell()
        try:
            for opcode, arg, _ in pickletools.genops(file):
                if opcode.name.startswith("EXT"):
                    module, name = copyreg._inverted_registry.get(arg, ("?", f"<ext {arg}>"))
                    raise UnsafePickleError(
                        f"{module}.{name}", self._source, f"pickle extension code {arg}"
                    )
        finally:
            file.seek(start)


def safe_load(
    path_or_file: str | os.PathLike | IO[bytes],
    *,
    extra_allowed: Iterable[tuple[str, str] | str] | Mapping[tuple[str, str], Any] = (),
    encoding: str = "latin1",
) -> Any:
    """Unpickle a file, allowing only ``ALLOWED_GLOBALS`` (plus ``extra_allowed``).

    ``extra_allowed``: ``(module, name)`` pairs (or ``"module.name"`` strings) of further data
    classes, loaded as :class:`Record`; or a mapping ``{(module, name): obj}`` for an object the
    caller vouches for. Raises :class:`UnsafePickleError` (a ``pickle.UnpicklingError``) naming
    the refused ``module.name`` and the file; nothing named by the file is ever imported.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        with open(path, "rb") as f:
            return SafeUnpickler(
                f, source=path, extra_allowed=extra_allowed, encoding=encoding
            ).load()
    return SafeUnpickler(path_or_file, extra_allowed=extra_allowed, encoding=encoding).load()


def safe_loads(data: bytes, *, extra_allowed=(), encoding: str = "latin1", source: str = "<bytes>"):
    """:func:`safe_load` of an in-memory pickle."""
    return SafeUnpickler(
        io.BytesIO(data), source=source, extra_allowed=extra_allowed, encoding=encoding
    ).load()
