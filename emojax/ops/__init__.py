"""emojax.ops: sparse probability mappings, their Fenchel-Young losses, sparse attention.

Pure JAX functions (jit / vmap / grad / jvp / sharding safe); no parameters, no Flax state.
No function here reads a device array on the host (no host sync): value checks run on Python /
NumPy inputs only, or through checkify under :func:`device_checks` (see ``ops/_validate.py``).
"""

from emojax.ops._validate import device_checks
from emojax.ops.alpha import alpha_from_raw, raw_from_alpha
from emojax.ops.attention import NORMALIZERS, attention, attention_weights
from emojax.ops.entmax15 import entmax15
from emojax.ops.entmax_bisect import entmax_bisect
from emojax.ops.fenchel_young import entmax15_loss, entmax_bisect_loss, sparsemax_loss
from emojax.ops.normalize import l2_normalize
from emojax.ops.softmax import softmax
from emojax.ops.sparsemax import sparsemax
from emojax.ops.tsallis import tsallis_entropy

__all__ = [
    "NORMALIZERS",
    "alpha_from_raw",
    "attention",
    "attention_weights",
    "device_checks",
    "entmax15",
    "entmax15_loss",
    "entmax_bisect",
    "entmax_bisect_loss",
    "l2_normalize",
    "raw_from_alpha",
    "softmax",
    "sparsemax",
    "sparsemax_loss",
    "tsallis_entropy",
]
