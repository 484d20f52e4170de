"""emojax.losses: pure contrastive and representation objectives (and their sharded variants)."""

from emojax.losses._common import check_finite, l2_normalize
from emojax.losses.clip import CLIP_INIT_LOG_SCALE, clip_loss, clip_loss_multi
from emojax.losses.clip_sharded import clip_loss_sharded
from emojax.losses.siglip import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_SCALE, siglip_loss
from emojax.losses.siglip_ring import siglip_loss_ring

__all__ = [
    "CLIP_INIT_LOG_SCALE",
    "SIGLIP_INIT_BIAS",
    "SIGLIP_INIT_LOG_SCALE",
    "check_finite",
    "clip_loss",
    "clip_loss_multi",
    "clip_loss_sharded",
    "l2_normalize",
    "siglip_loss",
    "siglip_loss_ring",
]
