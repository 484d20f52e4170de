"""emojax.losses: pure contrastive and representation objectives (and their sharded variants)."""

from emojax.losses._common import check_finite, l2_normalize
from emojax.losses.clip import CLIP_INIT_LOG_SCALE, clip_loss, clip_loss_multi

__all__ = [
    "CLIP_INIT_LOG_SCALE",
    "check_finite",
    "clip_loss",
    "clip_loss_multi",
    "l2_normalize",
]
