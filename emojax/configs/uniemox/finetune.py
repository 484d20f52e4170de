"""UniEmoX stage 3a: fine-tune the pretrained encoder on the 8 emotion classes (built-in data).

    emojax quickstart uniemox                  # all stages; this one runs in WORKDIR/finetune
    emojax train --config=emojax/configs/uniemox/finetune.py --workdir=workdirs/uniemox/finetune \
        --config.stages_root=workdirs/uniemox  # loads STAGES_ROOT/pretrain's encoder

Method ``uniemox_classify``: mean-pooled encoder + linear head, every weight trained, label
smoothing 0.1, random resized crop + flip. From scratch: ``--config.init_from.path=''``.
The best validation checkpoint is kept (top-1), and the test split is evaluated whole.
"""

import ml_collections

from emojax.configs.uniemox import common


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "uniemox_classify"
    config.seed = 0
    root = config.stages_root = common.stages_root()
    m = config.model = ml_collections.ConfigDict()
    m.encoder = common.encoder()
    m.num_classes = 8
    m.pool = "mean"
    m.head_only = False
    m.label_smoothing = 0.1
    m.crop_scale = (0.5, 1.0)
    common.image_norm(m)
    config.data = common.builtin_data(64)
    config.optimizer = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=1e-3, warmup_steps=50, weight_decay=0.05, b2=0.999)
    )
    config.train = common.train_section(500, 100, "eval/top1", "max")
    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    config.init_from = ml_collections.ConfigDict(
        dict(path=root + "/pretrain", step=-1, subtrees=("params/encoder",), dont_load=())
    )
    return config
