"""Host-side accumulation of per-example outputs over a whole split."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class ExampleBuffer:
    """Collects the valid rows of per-example outputs batch by batch.

    ``add(outputs, valid)``: ``outputs`` maps names to arrays ``[B, ...]`` (one padded batch),
    ``valid`` is ``[B]`` bool; only valid rows are kept, in order. ``arrays()`` concatenates
    them: one row per example of the split, in the split's order.
    """

    def __init__(self):
        self._parts: dict[str, list[np.ndarray]] = {}
        self.count = 0

    def add(self, outputs: Mapping[str, np.ndarray], valid: np.ndarray) -> None:
        valid = np.asarray(valid, bool).reshape(-1)
        for name, value in outputs.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != valid.shape[0]:
                raise ValueError(
                    f"evaluator output {name!r} has shape {value.shape}; per-example outputs "
                    f"need a leading batch axis of {valid.shape[0]}"
                )
            self._parts.setdefault(name, []).append(value[valid])
        self.count += int(valid.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self._parts.items()}
