"""UniEmoX stage 3b: linear probe of the pretrained encoder (only the head is trained).

    emojax quickstart uniemox                  # all stages; this one runs in WORKDIR/linear_probe
    emojax train --config=emojax/configs/uniemox/linear_probe.py \
        --workdir=workdirs/uniemox/linear_probe --config.stages_root=workdirs/uniemox

Method ``uniemox_classify`` with ``model.head_only=True``: the encoder is frozen by the trainable
mask (no optimizer state, no weight decay), its mean-pooled features are standardised
(a LayerNorm without parameters) and a linear head is trained; flips, no crops.
"""

from emojax.configs.uniemox import finetune


def get_config():
    config = finetune.get_config()
    config.model.head_only = True
    config.model.label_smoothing = 0.0
    config.model.crop_scale = (1.0, 1.0)
    config.optimizer.learning_rate = 3e-3
    config.optimizer.weight_decay = 0.0
    return config
