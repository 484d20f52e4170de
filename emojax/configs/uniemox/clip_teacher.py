"""UniEmoX stage 1 (built-in data only): the CLIP teacher, trained on the photos and their captions.

    emojax quickstart uniemox                  # all stages; this one runs in WORKDIR/clip_teacher
    emojax train --config=emojax/configs/uniemox/clip_teacher.py \
        --workdir=workdirs/uniemox/clip_teacher

Method ``uniemox_clip``: an emojax CLIP (ViT 128-d x 2 at 64 px / patch 16, text 64-d x 1 over the
closed caption vocabulary, projection 128) with the symmetric InfoNCE on (photo, six-sentence
attribute caption) pairs. Real data uses converted Hugging Face CLIP weights instead
(``emojax convert --model=clip``). Result: see docs/uniemox.md (whole-split image->caption
retrieval on the test split).
"""

import ml_collections

from emojax.configs.uniemox import common


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "uniemox_clip"
    config.seed = 0
    config.stages_root = common.stages_root()
    m = config.model = ml_collections.ConfigDict()
    m.teacher = common.teacher("")
    m.flip = True
    config.data = common.builtin_data(128)
    config.optimizer = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=1e-3, warmup_steps=50, weight_decay=0.05, b2=0.98)
    )
    config.train = common.train_section(600, 300, "eval/i2t_R@5", "max")
    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
