"""Method discovery (emojax.models), method commands in ``emojax``, and the import rules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import emojax.cli
import emojax.models
from emojax.models import RegistryError, discover, get_method

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "emojax"


def test_discovery_finds_the_method_packages():
    registry = discover()
    assert registry.methods["emosense"] == "emojax.models.emosense.method:EmoSense"
    assert registry.methods["two_tower"] == "emojax.models.smoke.method:TwoTower"
    assert registry.methods["smoke"] == "emojax.models.smoke.method:TwoTower"
    assert registry.origins["method emosense"] == "emojax.models.emosense"
    assert registry.commands["invert"][0] == "emojax.models.emosense.cli"
    assert registry.commands["adjust"][0] == "emojax.models.emosense.cli"
    assert {"emojax.models.emosense", "emojax.models.smoke"} <= set(emojax.models.method_packages())
    assert set(registry.methods) <= set(emojax.models.REGISTRY)


def test_get_method_loads_the_class_and_aliases_agree():
    smoke = get_method("smoke")
    assert smoke is get_method("two_tower")
    assert smoke.__name__ == "TwoTower" and smoke.__module__ == "emojax.models.smoke.method"
    assert get_method("emosense").__module__ == "emojax.models.emosense.method"


def test_unknown_method_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown method 'nope'; known methods: \[.*'emosense'"):
        get_method("nope")


def _extra_package(monkeypatch, tmp_path, name: str, body: str) -> str:
    """A method package ``emojax.models.<name>`` living in tmp_path (name starts with zz_)."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(textwrap.dedent(body))
    monkeypatch.setattr(emojax.models, "__path__", [*emojax.models.__path__, str(tmp_path)])
    return f"emojax.models.{name}"


@pytest.fixture
def cleanup_modules():
    """Forgets the extra packages imported by a test."""
    yield
    for name in [m for m in sys.modules if m.startswith("emojax.models.zz_")]:
        del sys.modules[name]


def test_duplicate_method_name_names_both_packages(monkeypatch, tmp_path, cleanup_modules):
    full = _extra_package(
        monkeypatch, tmp_path, "zz_dup_method", 'METHODS = {"emosense": "elsewhere.method:Other"}'
    )
    with pytest.raises(RegistryError, match=rf"'emosense'.*emojax\.models\.emosense.*{full}"):
        discover()


def test_duplicate_command_names_both_packages(monkeypatch, tmp_path, cleanup_modules):
    _extra_package(
        monkeypatch,
        tmp_path,
        "zz_dup_command",
        'METHODS = {}\nCOMMANDS = {"invert": ("elsewhere.cli", "another invert")}',
    )
    with pytest.raises(RegistryError, match=r"command name 'invert'.*emosense.*zz_dup_command"):
        discover()


def test_malformed_declaration_is_an_error(monkeypatch, tmp_path, cleanup_modules):
    _extra_package(monkeypatch, tmp_path, "zz_bad", 'METHODS = {"bad": "no_colon_here"}')
    with pytest.raises(RegistryError, match=r"zz_bad registers method 'bad'.*'module:Class'"):
        discover()


def _fake_entry_points(points):
    def entry_points(*, group):
        assert group == emojax.models.ENTRY_POINT_GROUP
        return [EntryPoint(name=n, value=v, group=group) for n, v in points]

    return entry_points


def test_entry_points_add_third_party_methods(monkeypatch):
    monkeypatch.setattr(
        "importlib.metadata.entry_points", _fake_entry_points([("thirdparty", "tp.method:TP")])
    )
    registry = discover()
    assert registry.methods["thirdparty"] == "tp.method:TP"
    assert registry.origins["method thirdparty"].startswith("entry point 'thirdparty'")


def test_entry_point_clashing_with_a_package_is_an_error(monkeypatch):
    monkeypatch.setattr(
        "importlib.metadata.entry_points", _fake_entry_points([("smoke", "tp.method:Smoke")])
    )
    with pytest.raises(RegistryError, match=r"'smoke'.*emojax\.models\.smoke.*entry point 'smoke'"):
        discover()


# -- the emojax command --------------------------------------------------------------------


def test_cli_usage_lists_builtin_and_method_commands():
    text = emojax.cli.usage()
    for command in ("train", "eval", "convert", "quickstart", "invert", "adjust"):
        assert re.search(rf"^  {command}\s+\S", text, re.M), text
    assert "find sense values that produce an emotion" in text
    table = emojax.cli.commands()
    assert table["invert"] == emojax.models.method_commands()["invert"]
    assert list(table)[:4] == list(emojax.cli.SUBCOMMANDS)
    assert set(emojax.cli.SUBCOMMANDS) == {"train", "eval", "convert", "quickstart"}


def test_cli_method_command_clashing_with_a_builtin_is_an_error(monkeypatch):
    monkeypatch.setattr(emojax.models, "method_commands", lambda: {"train": ("x.cli", "mine")})
    with pytest.raises(ValueError, match=r"method command 'train' \(module x\.cli\) clashes"):
        emojax.cli.commands()


def test_cli_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        emojax.cli.run(["emojax", "no-such-command"])
    assert exit_info.value.code == 2
    assert "invert" in capsys.readouterr().err


def test_importing_the_cli_and_the_registry_loads_no_jax():
    code = (
        "import sys, time; t = time.perf_counter(); import emojax.cli, emojax.models; "
        "emojax.cli.usage(); emojax.models.REGISTRY; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'flax', 'numpy', 'optax', 'grain', 'tensorflow', 'torch')); "
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.startswith("[] "), out


# -- import rules (DESIGN.md: nothing below train imports train) ----------------------------


def _below_train_files() -> list[Path]:
    files = [PACKAGE / "models" / "__init__.py", PACKAGE / "models" / "base.py"]
    for package in sorted(
        p for p in (PACKAGE / "models").iterdir() if (p / "__init__.py").exists()
    ):
        files += [package / "__init__.py", package / "model.py", package / "method.py"]
    for sub in ("nn", "losses", "ops", "metrics", "data"):
        files += sorted((PACKAGE / sub).rglob("*.py"))
    return [f for f in files if f.exists()]


def _imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module imported anywhere in ``source`` (also inside functions);
    ``package``: the package the file belongs to (resolves relative imports)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parts[:-1])


def _train_imports(names: set[str]) -> list[str]:
    return sorted(m for m in names if m == "emojax.train" or m.startswith("emojax.train."))


def test_the_import_walker_sees_train_imports():
    source = "def f():\n    from .. import train\n    import emojax.train.loop\n"
    assert _train_imports(_imported_modules(source, "emojax.nn")) == [
        "emojax.train",
        "emojax.train.loop",
    ]
    assert _train_imports(_imported_modules("from emojax import train", "emojax.ops")) == [
        "emojax.train"
    ]
    assert _train_imports(_imported_modules("from . import train_utils", "emojax.nn")) == []


def test_nothing_below_train_imports_train():
    files = _below_train_files()
    assert any(f.name == "method.py" for f in files) and any(f.parent.name == "nn" for f in files)
    offenders = {
        str(f.relative_to(ROOT)): _train_imports(_imported_modules(f.read_text(), _package_of(f)))
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


METHOD_NAMES = ("emosense", "two_tower", "smoke", "joyful", "mcn", "uniemox", "anp")
# A config file named as an example (`configs/smoke.py`) is not the code knowing a method.
_CONFIG_PATH = re.compile(r"configs/[\w/]+\.py")
_METHOD_NAME = re.compile(rf"(?<![a-z0-9])({'|'.join(METHOD_NAMES)})(?![a-z0-9])", re.I)


@pytest.mark.parametrize(
    "path",
    [PACKAGE / "cli.py", *sorted((PACKAGE / "train").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_cli_and_trainer_name_no_method(path):
    hits = [
        f"{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _METHOD_NAME.search(_CONFIG_PATH.sub("", line))
    ]
    assert hits == []
