"""Building the model config dataclasses from Hugging Face ``config.json`` dicts."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def known_fields(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``config`` that are fields of the dataclass ``cls`` (others are dropped)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in config.items() if k in names}


def config_from_dict(cls: type[T], config: dict[str, Any], **overrides: Any) -> T:
    """``cls`` built from the known keys of ``config``, then ``overrides``."""
    return cls(**known_fields(cls, config) | overrides)
