"""Pieces the UniEmoX stage configs share (built-in data, CPU-sized towers, the stage links).

Every stage config sets ``config.stages_root`` to the one FieldReference of
:func:`stages_root`; the paths to earlier stages derive from it, so ``emojax quickstart`` (which
sets ``stages_root``) or ``--config.stages_root=DIR`` moves the whole chain.
"""

import ml_collections

from emojax.models.uniemox.views import IMAGENET_MEAN, IMAGENET_STD

STAGES_ROOT = "workdirs/uniemox"


def stages_root() -> ml_collections.FieldReference:
    return ml_collections.FieldReference(STAGES_ROOT)


def builtin_data(batch_size: int) -> ml_collections.ConfigDict:
    """The built-in scene photos (``emojax/models/uniemox/data.py``): 64x64, 8 emotions."""
    return ml_collections.ConfigDict(
        dict(
            source="uniemox_scenes",
            data_dir="",
            data_seed=0,
            num_train=20_000,
            num_validation=2_000,
            num_test=2_000,
            image_size=64,
            global_batch_size=batch_size,
            shuffle_seed=0,
            worker_count=0,
        )
    )


def encoder() -> ml_collections.ConfigDict:
    """The student ViT (CPU size: width 128, 4 blocks; the 64 px photos resized to 48 px,
    patch 8 -> 36 patches)."""
    return ml_collections.ConfigDict(
        dict(image_size=48, patch_size=8, hidden_size=128, num_layers=4, num_heads=4, mlp_dim=512)
    )


def teacher(path) -> ml_collections.ConfigDict:
    """The built-in CLIP teacher's sizes (stage clip_teacher) and where its run is."""
    return ml_collections.ConfigDict(
        dict(
            path=path,
            image_size=64,
            patch_size=16,
            hidden_size=128,
            num_layers=2,
            num_heads=4,
            mlp_dim=256,
            text_hidden_size=64,
            text_num_layers=1,
            text_num_heads=2,
            text_mlp_dim=256,
            max_length=48,
            projection_dim=128,
        )
    )


def image_norm(m: ml_collections.ConfigDict) -> None:
    m.image_mean = IMAGENET_MEAN
    m.image_std = IMAGENET_STD


def train_section(steps: int, eval_every: int, best: str = "", mode: str = "max"):
    return ml_collections.ConfigDict(
        dict(
            num_steps=steps,
            log_every=50,
            eval_every=eval_every,
            save_every=eval_every,
            keep_last=1,
            keep_best_metric=best,
            keep_best_mode=mode,
        )
    )
