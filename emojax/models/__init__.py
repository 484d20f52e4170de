"""Methods, one package each, registered by name (imported lazily)."""

import importlib

# config.method -> "module:Class"
REGISTRY = {
    "two_tower": "emojax.models.smoke.method:TwoTower",
    "emosense": "emojax.models.emosense.method:EmoSense",
}


def get_method(name: str):
    """The Method class registered under ``name``; a clear error for unknown names."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; known methods: {sorted(REGISTRY)}")
    module_name, cls_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)
