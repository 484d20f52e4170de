"""Stage 1: the region-text teacher ("Multi Region SentiBank") on the built-in data.

    emojax quickstart anp_distill                  # runs teacher -> student -> distill
    emojax train --config=emojax/configs/anp_distill/teacher.py \
        --workdir=workdirs/anp_distill/teacher

Each region's "adjective label" text of its top-4 ANPs -> Transformer encoder (word embedding
10, the paper's) -> last token -> dense; trained per region with the image label (the paper:
batch 20 regions, lr 0.003; here 32 images of 2-4 regions). Evaluated as P_SB
(saliency-weighted) against the image labels. Measured (seeds 0/1/2, 600 training images):
test accuracy 73.0 +- 0.8 %, F1 0.659 +- 0.012 (``emojax anp_table``; docs/anp_distill.md).
"""

from emojax.configs.anp_distill import base


def get_config():
    config = base.get_config()
    config.model.stage = "teacher"
    config.optimizer.learning_rate = 3e-3
    config.train.num_steps = 400
    return config
