"""Methods, one package each, found by name; nothing here lists them.

A method package ``emojax/models/<package>/`` declares in its ``__init__.py`` (kept light: no
jax / flax import at module level)::

    METHODS = {"mymethod": "emojax.models.mypackage.method:MyMethod"}    # config.method -> class
    COMMANDS = {"mycommand": ("emojax.models.mypackage.cli", "one-line help")}     # optional

A ``COMMANDS`` module exposes ``main(command, argv)`` and becomes ``emojax <command>``.
Installed third-party packages add methods with an entry point in the group ``emojax.methods``::

    [project.entry-points."emojax.methods"]
    mymethod = "mypackage.method:MyMethod"

Public API: ``REGISTRY`` (name -> "module:Class"), :func:`get_method` (the class of a name),
:func:`method_commands` (command -> (module, help)) and :func:`discover` (a fresh scan). The
scan runs once, on first use; it imports only the packages' ``__init__.py`` files, never a
method module. A name declared twice (by two packages or an entry point) is an error naming both.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import NamedTuple

ENTRY_POINT_GROUP = "emojax.methods"


class RegistryError(ValueError):
    """A method package declares something malformed, or two declare the same name."""


class Registry(NamedTuple):
    methods: dict[str, str]  # method name -> "module:Class"
    commands: dict[str, tuple[str, str]]  # command -> (module, one-line help)
    origins: dict[str, str]  # "method <name>" / "command <name>" -> where it was declared


def _add(registry: Registry, kind: str, name: str, value, origin: str) -> None:
    table = registry.methods if kind == "method" else registry.commands
    key = f"{kind} {name}"
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{origin} declares a {kind} with an invalid name {name!r}")
    if name in table:
        raise RegistryError(
            f"{kind} name {name!r} is declared twice: by {registry.origins[key]} "
            f"({table[name]!r}) and by {origin} ({value!r}); rename one of them"
        )
    table[name] = value
    registry.origins[key] = origin


def _check_target(target, name: str, origin: str) -> str:
    module, _, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not (module and attr):
        raise RegistryError(
            f"{origin} registers method {name!r} as {target!r}; expected 'module:Class'"
        )
    return target


def _check_command(spec, name: str, origin: str) -> tuple[str, str]:
    if not (isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec)):
        raise RegistryError(
            f"{origin} declares command {name!r} as {spec!r}; expected (module, one-line help)"
        )
    return spec


def method_packages() -> list[str]:
    """Full names of the subpackages of ``emojax.models`` (each one method's package)."""
    import pkgutil

    return sorted(
        f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if info.ispkg
    )


def discover() -> Registry:
    """Scans the method packages and the ``emojax.methods`` entry points (not cached)."""
    from importlib.metadata import entry_points

    registry = Registry({}, {}, {})
    for package in method_packages():
        module = importlib.import_module(package)
        for name, target in getattr(module, "METHODS", {}).items():
            _add(registry, "method", name, _check_target(target, name, package), package)
        for name, spec in getattr(module, "COMMANDS", {}).items():
            _add(registry, "command", name, _check_command(spec, name, package), package)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(point, "dist", None)
        origin = f"entry point {point.name!r} of {dist.name if dist else 'an installed package'}"
        _add(registry, "method", point.name, _check_target(point.value, point.name, origin), origin)
    return registry


@cache
def _registry() -> Registry:
    return discover()


def method_commands() -> dict[str, tuple[str, str]]:
    """``emojax <command>`` of every method package: command -> (module, one-line help)."""
    return dict(_registry().commands)


def get_method(name: str):
    """The Method class registered under ``name`` (or named directly as ``"module:Class"``, for
    methods outside any package); a clear error for unknown names."""
    if ":" in name:
        module_name, cls_name = name.split(":", 1)
        return getattr(importlib.import_module(module_name), cls_name)
    registry = _registry().methods
    if name not in registry:
        raise KeyError(f"unknown method {name!r}; known methods: {sorted(registry)}")
    module_name, cls_name = registry[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def __getattr__(name: str):
    # REGISTRY is built on first access (PEP 562) so that `import emojax.models` stays cheap.
    if name == "REGISTRY":
        return _registry().methods
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "REGISTRY"])
