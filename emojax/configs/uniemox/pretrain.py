"""UniEmoX stage 2: MAE pretraining guided by the frozen CLIP teacher, scene + person views.

    emojax quickstart uniemox                  # all stages; this one runs in WORKDIR/pretrain
    emojax train --config=emojax/configs/uniemox/pretrain.py --workdir=workdirs/uniemox/pretrain \
        --config.stages_root=workdirs/uniemox  # the teacher is read from STAGES_ROOT/clip_teacher

Method ``uniemox``: L = L_MAE + (1 - cos(f, g)) + (1 - cos(n(f T^T), n(g T^T))) (weights 1; the
official objective). Study variants (docs/uniemox.md): ``--config.model.views='("scene",)'``
(scene view only), ``--config.model.w_image=0 --config.model.w_prompt=0`` (MAE only, no teacher
needed). Mask ratio 0.75 here (36 patches; the paper's 0.9 is for 196 patches at 224 px).
"""

import ml_collections

from emojax.configs.uniemox import common


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "uniemox"
    config.seed = 0
    root = config.stages_root = common.stages_root()
    m = config.model = ml_collections.ConfigDict()
    m.encoder = common.encoder()
    m.decoder = ml_collections.ConfigDict(
        dict(hidden_size=128, num_layers=2, num_heads=4, mlp_dim=512)  # = teacher projection
    )
    m.teacher = common.teacher(root + "/clip_teacher")
    m.views = ("scene", "person")
    m.person_fallback = "random_crop"  # where an example has no box
    m.mask_ratio = 0.75
    m.person_mask_ratio = 0.75
    m.norm_pix = True
    m.fixed_pos_embedding = True  # MAE: fixed 2-D sin-cos tables, not trained
    m.flip = True
    m.w_mae = 1.0
    m.w_image = 1.0
    m.w_prompt = 1.0
    common.image_norm(m)
    config.data = common.builtin_data(64)
    config.optimizer = ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=1.5e-3,
            warmup_steps=100,
            weight_decay=0.05,
            b1=0.9,
            b2=0.95,
        )
    )
    config.train = common.train_section(1000, 500)
    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
