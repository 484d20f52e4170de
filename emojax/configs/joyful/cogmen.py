"""COGMEN-style baseline on the built-in dialogues (Joshi et al. 2022, which Joyful builds on).

    emojax train --config=emojax/configs/joyful/cogmen.py --workdir=workdirs/joyful_cogmen

Differences from default.py: the raw concatenation of the modalities is the node input (no
fusion autoencoders, no fusion loss), window 5/5 (COGMEN), no contrastive loss; the same context
transformer, RGCN + TransformerConv and classifier. Measured (seeds 0/1/2, 500 steps): test
weighted F1 66.1 +- 1.2 %, accuracy 66.2 +- 1.2 % at the best dev step; table: docs/joyful.md.
"""

import ml_collections

from emojax.configs.joyful import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.fusion.kind = "concat"
    config.model.w_fusion = 0.0
    config.model.contrast.weight = 0.0
    config.model.graph.window_past = 5
    config.model.graph.window_future = 5
    return config
