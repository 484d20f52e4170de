"""emojax.losses: pure contrastive and representation objectives (and their sharded variants).

Every loss returns a float32 scalar, checks shapes statically and checks finiteness of its inputs
when called eagerly (see ``emojax/losses/_common.py``); ``docs/losses.md`` gives the formulas.
"""

from emojax.losses._common import check_finite, l2_normalize
from emojax.losses.clip import CLIP_INIT_LOG_SCALE, clip_loss, clip_loss_multi
from emojax.losses.clip_sharded import clip_loss_sharded
from emojax.losses.cluster import (
    KMeansState,
    cluster_loss,
    cosine_inertia,
    fuse,
    kmeans_assign,
    kmeans_fit,
    kmeans_init,
    kmeans_plusplus,
    kmeans_push,
    kmeans_step,
    kmeans_update,
)
from emojax.losses.distill import anp_distill_loss, distill_loss, hinton_kl_loss
from emojax.losses.graph_contrastive import graph_contrastive_loss
from emojax.losses.mim import mae_loss, normalize_patches, patchify, simmim_loss
from emojax.losses.mms import masked_margin_softmax, mms_loss
from emojax.losses.multi_positive import multi_positive_nce, positive_weights
from emojax.losses.reconstruction import reconstruction_loss
from emojax.losses.siglip import SIGLIP_INIT_BIAS, SIGLIP_INIT_LOG_SCALE, siglip_loss
from emojax.losses.siglip_ring import siglip_loss_ring

__all__ = [
    "CLIP_INIT_LOG_SCALE",
    "SIGLIP_INIT_BIAS",
    "SIGLIP_INIT_LOG_SCALE",
    "KMeansState",
    "anp_distill_loss",
    "check_finite",
    "clip_loss",
    "clip_loss_multi",
    "clip_loss_sharded",
    "cluster_loss",
    "cosine_inertia",
    "distill_loss",
    "fuse",
    "graph_contrastive_loss",
    "hinton_kl_loss",
    "kmeans_assign",
    "kmeans_fit",
    "kmeans_init",
    "kmeans_plusplus",
    "kmeans_push",
    "kmeans_step",
    "kmeans_update",
    "l2_normalize",
    "mae_loss",
    "masked_margin_softmax",
    "mms_loss",
    "multi_positive_nce",
    "normalize_patches",
    "patchify",
    "positive_weights",
    "reconstruction_loss",
    "siglip_loss",
    "siglip_loss_ring",
    "simmim_loss",
]
