"""emojax.data.safe_pickle: data pickles load, code-running pickles are refused unrun."""

import collections
import copyreg
import os
import pickle
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

from emojax.data import iemocap
from emojax.data.safe_pickle import (
    ALLOWED_GLOBALS,
    Record,
    UnsafePickleError,
    safe_load,
    safe_loads,
)

# ------------------------------------------------------------------ hand-made gadget pickles


def _text(s: str) -> bytes:  # protocol 0 UNICODE argument
    return s.encode("raw-unicode-escape")


def _global0(module: str, name: str) -> bytes:  # protocol 0 GLOBAL opcode
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call0(module: str, name: str, *args: bytes) -> bytes:
    """``module.name(*args)`` in protocol 0; each arg is already pickle opcodes."""
    return _global0(module, name) + b"(" + b"".join(args) + b"tR"


def _str0(s: str) -> bytes:
    return b"V" + _text(s) + b"\n"


def _str4(s: str) -> bytes:  # SHORT_BINUNICODE / BINUNICODE
    data = s.encode()
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + struct.pack("<I", len(data)) + data


def _stack_global4(module: str, name: str, *args: bytes) -> bytes:
    """Protocol 4: ``STACK_GLOBAL(module, name)(*args)``; ``name`` may be a dotted path."""
    return b"\x80\x04" + _str4(module) + _str4(name) + b"\x93(" + b"".join(args) + b"tR."


class _Reduce:
    """Pickles as ``func(*args)``: the ``__reduce__`` route to a gadget."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _gadgets(marker, npy):
    """name -> (pickle bytes, refused global as named in the file, runs with plain pickle).

    ``npy``: a .npy file whose object array's own pickle runs exec (see the test).
    """
    touch = f"touch {marker}"
    return {
        "builtins.exec": (
            pickle.dumps(_Reduce(exec, _touch_code(marker)), protocol=4),
            "builtins.exec",
            True,
        ),
        "builtins.eval": (
            pickle.dumps(_Reduce(eval, _touch_code(marker)), protocol=2),
            "__builtin__.eval",  # protocol 2 writes Python 2 names
            True,
        ),
        "os.system": (_call0("os", "system", _str0(touch)) + b".", "os.system", True),
        "posix.system": (pickle.dumps(_Reduce(os.system, touch), protocol=3), "posix.system", True),
        "subprocess.Popen": (
            pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)]), protocol=4),
            "subprocess.Popen",
            True,
        ),
        "INST os.system": (  # protocol 0 INST opcode: calls the class/callable it names
            b"(" + _str0(touch) + b"ios\nsystem\n.",
            "os.system",
            True,
        ),
        "getattr(__import__('os'), 'system')": (
            _call0(
                "builtins",
                "getattr",
                _call0("builtins", "__import__", _str0("os")),
                _str0("system"),
            )
            + b"("
            + _str0(touch)
            + b"tR.",
            "builtins.getattr",
            True,
        ),
        "attrgetter('system')(__import__('os'))": (
            _call0("operator", "attrgetter", _str0("system"))
            + b"("
            + _call0("builtins", "__import__", _str0("os"))
            + b"tR("
            + _str0(touch)
            + b"tR.",
            "operator.attrgetter",
            True,
        ),
        "builtins.__import__": (
            _stack_global4("builtins", "__import__", _str4("os")),
            "builtins.__import__",
            False,
        ),
        "numpy.load(allow_pickle=True)": (
            _call0("numpy", "load", _str0(npy), b"N", b"I01\n") + b".",
            "numpy.load",
            True,
        ),
        "numpy runstring": (
            _call0(
                "numpy.testing._private.utils",
                "runstring",
                _str0(_touch_code(marker)),
                b"(d",
            )
            + b".",
            "numpy.testing._private.utils.runstring",
            True,
        ),
        "numpy.f2py": (
            _call0("numpy.f2py.f2py2e", "run_main", b"(l" + _str0("-h") + b"a") + b".",
            "numpy.f2py.f2py2e.run_main",
            False,
        ),
        "dotted attribute of an allowed module": (
            _stack_global4(
                "numpy", "testing._private.utils.runstring", _str4(_touch_code(marker)), b"}"
            ),
            "numpy.testing._private.utils.runstring",
            True,
        ),
        "dotted attribute of a record class": (
            _stack_global4("cogmen.Sample", "Sample.__init__", _str4("x")),
            "cogmen.Sample.Sample.__init__",
            False,
        ),
        "our own module's os": (
            _stack_global4("emojax.data.safe_pickle", "os.system", _str4(touch)),
            "emojax.data.safe_pickle.os.system",
            True,
        ),
        "copyreg._reconstructor(Popen, Popen, argv)": (
            _call0(
                "copy_reg",
                "_reconstructor",
                _global0("subprocess", "Popen"),
                _global0("subprocess", "Popen"),
                b"(l" + _str0("touch") + b"a" + _str0(str(marker)) + b"a",
            )
            + b".",
            "subprocess.Popen",
            True,
        ),
    }


GADGETS = list(_gadgets("/marker", "/inner.npy"))


def _wait_for(path, proc=None):
    if isinstance(proc, subprocess.Popen):
        proc.wait(timeout=30)
    return os.path.exists(path)


@pytest.mark.parametrize("name", GADGETS)
def test_gadget_is_refused_and_does_not_run(tmp_path, name):
    marker, npy = tmp_path / "marker", str(tmp_path / "inner.npy")
    np.save(npy, np.array([_Reduce(exec, _touch_code(marker))], dtype=object), allow_pickle=True)
    data, refused, real = _gadgets(marker, npy)[name]
    path = tmp_path / "gadget.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as info:
        safe_load(str(path))
    message = str(info.value)
    assert f"'{refused}'" in message and str(path) in message, message
    assert info.value.global_name == refused and info.value.source == str(path)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not marker.exists()
    if real:  # the gadget is real: the plain unpickler does run it
        result = pickle.loads(data)
        assert _wait_for(marker, result), f"gadget {name!r} did not run under plain pickle"


def _forged_numpy():
    """Pickles whose plain load makes numpy treat bytes from the file as object pointers."""
    x = np.frombuffer(b"A" * 8, "f8").copy()  # 0x4141414141414141 as a "pointer"
    ndarray_from_buffer = _Reduce(np.ndarray, (1,), np.dtype("O"), b"A" * 8)
    return {
        "ndarray(shape, 'O', buffer)": (
            pickle.dumps(ndarray_from_buffer, protocol=2),
            "numpy.ndarray",
            "allowed only as the array type given to _reconstruct",
        ),
        "object dtype with the flags of f8": (  # dtype.__setstate__ trusts the flags
            pickle.dumps(x, protocol=2).replace(b"f8", b"O8"),
            "numpy._core.multiarray._reconstruct",
            "object data for 1 items",
        ),
        "protocol 5 _frombuffer with that dtype": (
            pickle.dumps(x, protocol=5).replace(b"f8", b"O8"),
            "numpy._core.numeric._frombuffer",
            "not allowed for a dtype holding objects",
        ),
    }


@pytest.mark.parametrize("name", list(_forged_numpy()))
def test_numpy_pointer_forgery_is_refused(tmp_path, name):
    data, refused, detail = _forged_numpy()[name]
    path = tmp_path / "forged.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    assert info.value.global_name == refused and detail in str(info.value), str(info.value)
    # The plain unpickler loads it and the process dies on first use (in a child process).
    child = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read()))"],
        input=data,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode != 0


def _numpy_values():
    dtypes = [
        "f4", ">f8", "O", "U3", "S5", "V7", "b1", "M8[ns]", "m8[10s]", "c16", "(2,3)f4",
        [("a", "i4"), ("b", "O")],
        {"names": ["x", "y"], "formats": ["f4", "(2,)i2"], "offsets": [0, 8],
         "titles": ["tx", None], "itemsize": 16},
        np.dtype([("a", "i1"), ("b", "f8")], align=True),
        np.dtype("f4", metadata={"k": 1}),
    ]  # fmt: skip
    values = [np.dtype(d) for d in dtypes] + [np.zeros(3, d) for d in dtypes]
    return values + [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.zeros((2, 3), order="F"),
        np.array([[1, "a"], [None, 2.5]], dtype=object, order="F"),
        np.array([np.arange(3), np.arange(2)], dtype=object),
        np.array(["a", "bé"]),
        np.array(5.0),
        np.float32(1.5),
        np.int64(-3),
        np.bool_(True),
        np.str_("hé"),
        np.datetime64("2020-01-01", "D"),
        np.void(b"ab"),
        collections.OrderedDict(a=np.ones(2)),
        (np.ones(1), [np.zeros(2)], {1, 2}, frozenset([3]), complex(1, 2), slice(1, 2)),
        (bytearray(b"ab"), b"", b"\x00\xff"),
    ]


def _assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        _assert_same(a.dtype, b.dtype)
        assert a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous
        assert b.flags.writeable
        if a.dtype.hasobject:
            for x, y in zip(a.ravel().tolist(), b.ravel().tolist(), strict=True):
                _assert_same(x, y)
        else:
            assert a.tobytes() == b.tobytes()
    elif isinstance(a, np.dtype):
        assert a == b and a.flags == b.flags and a.byteorder == b.byteorder
        assert a.metadata == b.metadata and a.isalignedstruct == b.isalignedstruct
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    else:
        assert a == b


@pytest.mark.parametrize("protocol", range(6))
def test_numpy_and_builtin_values_round_trip(protocol):
    for value in _numpy_values():
        data = pickle.dumps(value, protocol=protocol)
        _assert_same(value, safe_loads(data))
        if b"numpy._core" in data and protocol < 4:  # numpy 1.x spelling (text GLOBALs)
            _assert_same(value, safe_loads(data.replace(b"numpy._core", b"numpy.core")))


def test_gadget_through_the_iemocap_loader(tmp_path):
    marker = tmp_path / "marker"
    gadget = _Reduce(exec, _touch_code(marker))
    path = tmp_path / "data_iemocap.pkl"
    path.write_bytes(pickle.dumps({"train": [gadget], "dev": [], "test": []}))
    with pytest.raises(UnsafePickleError, match=r"data_iemocap\.pkl: global 'builtins\.exec'"):
        iemocap.load_dialogues(str(path))
    assert not marker.exists()


def test_guarded_globals_refuse_other_uses(tmp_path):
    marker = tmp_path / "marker"
    cases = [
        # an allowed base other than object: would run base.__new__/__init__ on the state
        "copyreg._reconstructor",
        _call0(
            "copy_reg",
            "_reconstructor",
            _global0("cogmen.Sample", "Sample"),
            _global0("__builtin__", "set"),
            b"(l" + _str0("x") + b"a",
        ),
        # a class that is not a record class
        "copyreg._reconstructor",
        _call0(
            "copyreg",
            "_reconstructor",
            _global0("numpy", "ndarray"),
            _global0("builtins", "object"),
            b"N",
        ),
        "_codecs.encode",
        _call0("_codecs", "encode", _str0("x"), _str0("rot13")),
    ]
    for refused, body in zip(cases[::2], cases[1::2], strict=True):
        path = tmp_path / "guarded.pkl"
        path.write_bytes(body + b".")
        with pytest.raises(UnsafePickleError) as info:
            safe_load(path)
        assert info.value.global_name == refused and str(path) in str(info.value)
        assert "allowed only" in str(info.value)
    assert not marker.exists()


def test_extension_codes_cannot_bypass_find_class(tmp_path):
    # EXT opcodes resolve a registered code from a process-wide cache without find_class.
    marker = tmp_path / "marker"
    code = 0x7FFFFFF0
    copyreg.add_extension("os", "system", code)
    try:
        ext4 = b"\x84" + struct.pack("<I", code)
        assert pickle.loads(b"\x80\x02" + ext4 + b".") is os.system  # primes the cache
        gadget = b"\x80\x02" + ext4 + b"(" + _str0(f"touch {marker}") + b"tR."
        with pytest.raises(UnsafePickleError, match=r"'os\.system'.*extension code"):
            safe_loads(gadget)
        assert not marker.exists()
        np.testing.assert_array_equal(safe_loads(pickle.dumps(np.arange(3))), np.arange(3))
    finally:
        copyreg.remove_extension("os", "system", code)


def test_record_refuses_dunder_state_and_is_read_only():
    # BUILD on the record class itself, with a slot-state dict, must not rebind its methods.
    init = Record.__init__
    build_on_class = _global0("cogmen.Sample", "Sample") + b"(N(d" + _str0("__init__") + b"I1\nstb."
    with pytest.raises((AttributeError, TypeError)):
        safe_loads(build_on_class)
    assert Record.__init__ is init
    with pytest.raises(AttributeError, match="read-only"):
        Record.__init__ = None
    # A __dict__ key could shadow __setstate__ for a later BUILD on the same instance.
    shadow = (
        _global0("cogmen.Sample", "Sample")
        + b")\x81(d"
        + _str0("__setstate__")
        + _global0("builtins", "set")
        + b"sb."
    )
    with pytest.raises(pickle.UnpicklingError, match=r"<bytes>: .*'__setstate__' is not allowed"):
        safe_loads(b"\x80\x02" + shadow)
    with pytest.raises(TypeError):
        ALLOWED_GLOBALS[("builtins", "exec")] = exec


# --------------------------------------------------------------------------- data that loads


def _sample_class(module_name):
    """A stand-in for the authors' ``Sample``, importable as ``module_name.Sample``."""

    class Sample:
        def __init__(self, vid, speaker, label, text, audio, visual, sentence):
            self.vid, self.speaker, self.label = vid, speaker, label
            self.text, self.audio, self.visual, self.sentence = text, audio, visual, sentence
            self.sbert_sentence_embeddings = np.stack([np.full(768, i, np.float32) for i in label])

    Sample.__module__, Sample.__qualname__ = module_name, "Sample"
    return Sample


def _register(monkeypatch, Sample):
    """Make ``Sample`` picklable under its module name (package parents included)."""
    parts = Sample.__module__.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name == "__main__":
            monkeypatch.setattr(sys.modules["__main__"], "Sample", Sample, raising=False)
            continue
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
        if i > 1:
            setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], module)
    if Sample.__module__ != "__main__":
        sys.modules[Sample.__module__].Sample = Sample


def _iemocap_data(Sample):
    rng = np.random.default_rng(1)

    def dialogue(vid, n):
        return Sample(
            vid,
            ["F" if i % 3 else "M" for i in range(n)],
            [int(x) for x in rng.integers(0, 6, n)],
            [rng.normal(size=100).astype(np.float32) for _ in range(n)],
            [rng.normal(size=100).astype(np.float32) for _ in range(n)],
            [rng.normal(size=512).astype(np.float32) for _ in range(n)],
            [f"line {i} of {vid}" for i in range(n)],
        )

    return {
        "train": [dialogue("Ses01F_impro01", 4), dialogue("Ses01M_script02", 6)],
        "dev": [dialogue("Ses02F_impro03", 3)],
        "test": [dialogue("Ses05M_script01", 5)],
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("module", ["cogmen.Sample", "cogmen", "joyful.Sample", "__main__"])
def test_iemocap_style_pickle_loads(tmp_path, monkeypatch, protocol, module):
    Sample = _sample_class(module)
    data = _iemocap_data(Sample)
    path = tmp_path / "data_iemocap.pkl"
    with monkeypatch.context() as patch:
        _register(patch, Sample)
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert "cogmen" not in sys.modules and "joyful" not in sys.modules

    loaded = iemocap.load_dialogues(str(path))
    assert "cogmen" not in sys.modules and "joyful" not in sys.modules
    assert set(loaded) == {"train", "dev", "test"}
    for split, dialogues in data.items():
        assert len(loaded[split]) == len(dialogues)
        for want, got in zip(dialogues, loaded[split], strict=True):
            assert isinstance(got, Record) and set(vars(got)) == set(vars(want))
            assert got.vid == want.vid and got.speaker == want.speaker
            assert got.label == want.label and got.sentence == want.sentence
            for key in ("text", "audio", "visual"):
                for a, b in zip(getattr(got, key), getattr(want, key), strict=True):
                    assert a.dtype == np.float32
                    np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(
                got.sbert_sentence_embeddings, want.sbert_sentence_embeddings
            )
            example = iemocap.dialogue_example(got, iemocap.Iemocap.BUILDER_CONFIGS[0])
            np.testing.assert_array_equal(example["audio"], np.stack(want.audio))


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy_1x_names_load(protocol):
    # numpy 1.x writes numpy.core.multiarray._reconstruct/scalar; numpy 2 numpy._core.
    values = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "s": np.float64(2.5),
        "o": collections.OrderedDict(x=np.int64(3)),
        "set": {1, 2},
        "c": complex(1, -2),
        "b": b"\x00\xffraw",
    }
    data = pickle.dumps(values, protocol=protocol)
    if b"numpy._core" in data:
        data = data.replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in data
    loaded = safe_loads(data)
    np.testing.assert_array_equal(loaded["a"], values["a"])
    assert loaded["a"].dtype == np.float32 and type(loaded["s"]) is np.float64
    assert loaded["o"] == values["o"] and type(loaded["o"]) is collections.OrderedDict
    assert loaded["set"] == {1, 2} and loaded["c"] == values["c"] and loaded["b"] == values["b"]


def test_other_classes_need_extra_allowed(tmp_path, monkeypatch):
    Utterance = _sample_class("mypkg.features")
    Utterance.__qualname__ = Utterance.__name__ = "Utterance"
    with monkeypatch.context() as patch:
        _register(patch, Utterance)
        sys.modules["mypkg.features"].Utterance = Utterance
        data = pickle.dumps([Utterance("v", ["M"], [1], [], [], [], ["hi"])])
    path = tmp_path / "u.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"'mypkg\.features\.Utterance'"):
        safe_load(path)
    for extra in ([("mypkg.features", "Utterance")], ["mypkg.features.Utterance"]):
        (record,) = safe_load(path, extra_allowed=extra)
        assert isinstance(record, Record) and record.sentence == ["hi"]
    with open(path, "rb") as f:  # a file object; the error names its path too
        with pytest.raises(UnsafePickleError, match=str(path)):
            safe_load(f)


def test_shared_and_cyclic_references_survive():
    x = np.ones(2, np.float32)
    cycle = [x]
    cycle.append(cycle)
    loaded = safe_loads(pickle.dumps({"a": x, "b": (x, cycle)}))
    assert loaded["a"] is loaded["b"][0] is loaded["b"][1][0]
    assert loaded["b"][1][1] is loaded["b"][1]
    np.testing.assert_array_equal(loaded["a"], x)
