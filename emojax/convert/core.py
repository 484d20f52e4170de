"""PyTorch state_dict <-> Flax params by explicit name maps.

A name map is a list of :class:`Rule` s, one per tensor: the PyTorch name, the Flax param path
and how the array is laid out differently (``linear``: ``[out, in] -> [in, out]``, ``conv``:
``[out, in, kh, kw] -> [kh, kw, in, out]``, ``conv1d``: ``[out, in, w] -> [w, in, out]``,
``prependN``: N leading size-1 axes added).
:func:`state_dict_to_flax` applies a map and fails
with one :class:`ConversionError` that lists every missing, unexpected and mis-shaped tensor.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence

import flax
import jax
import numpy as np

TRANSFORMS = ("identity", "linear", "conv", "conv1d", "prepend1", "prepend2")


@dataclasses.dataclass(frozen=True)
class Rule:
    """``torch_name`` (a state_dict key) -> ``flax_path`` (tuple of keys into ``params``)."""

    torch_name: str
    flax_path: tuple[str, ...]
    transform: str = "identity"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"Rule {self.torch_name}: transform {self.transform!r} not in {TRANSFORMS}"
            )


def linear_rules(torch_prefix: str, path: tuple[str, ...], bias: bool = True) -> list[Rule]:
    """``torch.nn.Linear`` -> ``nn.Dense`` (``kernel`` transposed, ``bias``)."""
    rules = [Rule(f"{torch_prefix}.weight", path + ("kernel",), "linear")]
    return rules + ([Rule(f"{torch_prefix}.bias", path + ("bias",))] if bias else [])


def norm_rules(torch_prefix: str, path: tuple[str, ...]) -> list[Rule]:
    """``torch.nn.LayerNorm`` -> ``nn.LayerNorm`` (``weight`` -> ``scale``)."""
    return [
        Rule(f"{torch_prefix}.weight", path + ("scale",)),
        Rule(f"{torch_prefix}.bias", path + ("bias",)),
    ]


def conv_rules(torch_prefix: str, path: tuple[str, ...], bias: bool = True) -> list[Rule]:
    """``torch.nn.Conv2d`` -> ``nn.Conv`` (OIHW -> HWIO)."""
    rules = [Rule(f"{torch_prefix}.weight", path + ("kernel",), "conv")]
    return rules + ([Rule(f"{torch_prefix}.bias", path + ("bias",))] if bias else [])


def block_rules(torch_prefix: str, path: tuple[str, ...], names: dict[str, str]) -> list[Rule]:
    """One :class:`emojax.nn.transformer.EncoderBlock`; ``names`` gives the torch sub-module name
    of ``query key value out fc1 fc2 norm1 norm2``."""
    rules = []
    for ours in ("query", "key", "value", "out"):
        rules += linear_rules(f"{torch_prefix}.{names[ours]}", path + ("attn", ours))
    for ours in ("fc1", "fc2"):
        rules += linear_rules(f"{torch_prefix}.{names[ours]}", path + ("mlp", ours))
    for ours in ("norm1", "norm2"):
        rules += norm_rules(f"{torch_prefix}.{names[ours]}", path + (ours,))
    return rules


class ConversionError(ValueError):
    """Raised when a state_dict does not match a name map; the message lists every problem."""

    def __init__(self, missing=(), unexpected=(), mis_shaped=(), unfilled=(), context=""):
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.mis_shaped, self.unfilled = list(mis_shaped), list(unfilled)
        lines = [f"state_dict does not match the {context or 'expected'} layout:"]
        if self.missing:
            lines.append(f"  missing tensors ({len(self.missing)}): " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(
                f"  unexpected tensors ({len(self.unexpected)}): " + ", ".join(self.unexpected)
            )
        for name, got, want in self.mis_shaped:
            lines.append(f"  mis-shaped: {name} has shape {tuple(got)}, expected {tuple(want)}")
        if self.unfilled:
            lines.append(
                f"  Flax params with no rule ({len(self.unfilled)}): " + ", ".join(self.unfilled)
            )
        lines.append(
            "  check that the checkpoint and the model config (sizes, layer count, "
            "heads such as pooler / MLM) belong together"
        )
        super().__init__("\n".join(lines))


def _to_flax(array: np.ndarray, transform: str) -> np.ndarray:
    if transform == "linear":
        return np.ascontiguousarray(array.T)
    if transform == "conv":
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    if transform == "conv1d":
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    if transform.startswith("prepend"):
        return array.reshape((1,) * int(transform[-1]) + array.shape)
    return array


def _to_torch(array: np.ndarray, transform: str) -> np.ndarray:
    if transform == "linear":
        return np.ascontiguousarray(array.T)
    if transform == "conv":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if transform == "conv1d":
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    if transform.startswith("prepend"):
        n = int(transform[-1])
        return array.reshape(array.shape[n:]) if array.shape[:n] == (1,) * n else array
    return array


def _torch_shape(shape: Sequence[int], transform: str) -> tuple[int, ...]:
    return tuple(_to_torch(np.empty(shape, dtype=np.uint8), transform).shape)


def to_numpy(tensor) -> np.ndarray:
    """A torch tensor, jax array or numpy array -> numpy (torch floats as float32)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu()
        if tensor.dtype.is_floating_point:
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(tensor)


def state_dict_to_flax(
    state_dict: Mapping[str, object],
    rules: Iterable[Rule],
    *,
    expected: Mapping | None = None,
    ignore: Sequence[str] = (),
    context: str = "",
) -> dict:
    """Convert ``state_dict`` (name -> tensor/array) to a nested Flax dict following ``rules``.

    ``expected``: a pytree of arrays/``ShapeDtypeStruct`` (e.g. ``jax.eval_shape(module.init,
    ...)["params"]``, unboxed); when given, every converted shape is checked and every expected
    leaf must be filled. ``ignore``: glob patterns of state_dict keys that are allowed to be left
    over (buffers such as ``*.num_batches_tracked``).
    Raises :class:`ConversionError` listing all problems at once.
    """
    rules = list(rules)
    want = None
    if expected is not None:
        flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(expected))
        want = {k: tuple(v.shape) for k, v in flat.items()}
    flat_out, missing, mis_shaped, used = {}, [], [], set()
    for rule in rules:
        if rule.torch_name not in state_dict:
            missing.append(rule.torch_name)
            continue
        used.add(rule.torch_name)
        array = _to_flax(to_numpy(state_dict[rule.torch_name]), rule.transform)
        if want is not None:
            target = want.get(rule.flax_path)
            if target is None:
                raise ValueError(f"name map bug: {'/'.join(rule.flax_path)} is not a Flax param")
            if tuple(array.shape) != target:
                mis_shaped.append(
                    (
                        rule.torch_name,
                        _torch_shape(array.shape, rule.transform),
                        _torch_shape(target, rule.transform),
                    )
                )
                continue
        flat_out[rule.flax_path] = array
    unexpected = [
        k
        for k in state_dict
        if k not in used and not any(fnmatch.fnmatchcase(k, p) for p in ignore)
    ]
    unfilled = []
    if want is not None:
        mapped = {r.flax_path for r in rules}
        unfilled = ["/".join(p) for p in want if p not in mapped]
    if missing or unexpected or mis_shaped or unfilled:
        raise ConversionError(missing, sorted(unexpected), mis_shaped, unfilled, context)
    return flax.traverse_util.unflatten_dict(flat_out)


def flax_to_state_dict(params: Mapping, rules: Iterable[Rule]) -> dict[str, np.ndarray]:
    """Inverse of :func:`state_dict_to_flax`: Flax params -> ``{torch_name: np.ndarray}``."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(unbox(params)))
    out = {}
    for rule in rules:
        if rule.flax_path not in flat:
            raise KeyError(
                f"Flax param {'/'.join(rule.flax_path)} (for {rule.torch_name}) is "
                "missing; were the params built with the same config?"
            )
        out[rule.torch_name] = _to_torch(np.asarray(flat[rule.flax_path]), rule.transform)
    return out


def unbox(tree):
    """Strip Linen partitioning metadata (``nn.Partitioned``) from a params tree.

    Only the metadata goes: no sharding constraint is applied, so this also works on abstract
    shapes (``jax.eval_shape``) inside ``jax.set_mesh`` + ``nn.logical_axis_rules``, where
    ``nn.meta.unbox`` would constrain them to the mesh (what the training loop's context does).
    """
    import flax.linen as nn

    def strip(x):
        return x.unbox(apply_constraint=False) if isinstance(x, nn.meta.AxisMetadata) else x

    return jax.tree.map(strip, tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read tensors without unpickling untrusted code.

    ``*.safetensors`` via safetensors; ``*.bin``/``*.pt``/``*.pth`` via
    ``torch.load(weights_only=True)``; a directory: its ``model.safetensors`` (else
    ``pytorch_model.bin``).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.exists(os.path.join(path, name)):
                return load_state_dict(os.path.join(path, name))
        raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin in directory")
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(path)
    if path.endswith((".bin", ".pt", ".pth")):
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, Mapping):
            raise ValueError(f"{path}: expected a state_dict (name -> tensor), got {type(obj)}")
        return {k: to_numpy(v) for k, v in obj.items()}
    raise ValueError(f"{path}: unknown weights format; use .safetensors, .bin, .pt or .pth")


def save_flax_params(params: Mapping, path: str | os.PathLike) -> None:
    """Write params as safetensors with ``/``-joined Flax paths as names (shapes kept: 0-d
    params such as CLIP's ``logit_scale`` stay 0-d; ``np.ascontiguousarray`` made them [1])."""
    from safetensors.numpy import save_file

    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(unbox(params)))
    save_file({"/".join(k): np.asarray(v, order="C") for k, v in flat.items()}, os.fspath(path))


def load_flax_params(path: str | os.PathLike) -> dict:
    """Read params written by :func:`save_flax_params`."""
    from safetensors.numpy import load_file

    flat = load_file(os.fspath(path))
    return flax.traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
