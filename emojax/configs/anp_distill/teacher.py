"""Stage 1: the region-text teacher ("Multi Region SentiBank") on the built-in data.

    emojax quickstart anp_distill                  # runs teacher -> student -> distill
    emojax train --config=emojax/configs/anp_distill/teacher.py \
        --workdir=workdirs/anp_distill/teacher

Each region's "adjective label" text of its top-4 ANPs -> Transformer encoder (word embedding
10, the paper's) -> last token -> dense; trained per region with the image label (the paper:
batch 20 regions, lr 0.003; here 32 images of 2-4 regions). Evaluated as P_SB
(saliency-weighted) against the image labels. Measured (seed 0, 600 training images, shared
2-core CPU): test accuracy 72.1 %, F1 0.645 (docs/anp_distill.md).
"""

from emojax.configs.anp_distill import base


def get_config():
    config = base.get_config()
    config.model.stage = "teacher"
    config.optimizer.learning_rate = 3e-3
    config.train.num_steps = 400
    return config
