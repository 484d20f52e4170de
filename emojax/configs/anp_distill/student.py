"""Stage 2 without the teacher: the ResNet alone on the labels (the paper's "ResNet101" row).

    emojax train --config=emojax/configs/anp_distill/student.py \
        --workdir=workdirs/anp_distill/student

ResNet-18 at width 16 on the built-in 64x64 images, L = L_r (alpha = 0). Measured (seeds 0/1/2,
600 training images): test accuracy 70.0 +- 1.9 %, F1 0.655 +- 0.020 (docs/anp_distill.md).
"""

from emojax.configs.anp_distill import base


def get_config():
    config = base.get_config()
    config.model.stage = "student"
    config.model.alpha = 0.0
    config.optimizer.learning_rate = 1e-3
    config.optimizer.name = "adamw"
    config.optimizer.weight_decay = 1e-4
    config.train.num_steps = 400
    return config
