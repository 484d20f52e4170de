"""Joyful ablation on the built-in dialogues: without the graph contrastive loss.

    emojax train --config=emojax/configs/joyful/no_contrast.py --workdir=workdirs/joyful_no_contrast

Differences from default.py: ``model.contrast.weight = 0`` (no augmented views). Measured (seeds
0/1/2, 500 steps): test weighted F1 72.5 +- 0.6 %, accuracy 72.4 +- 0.6 % at the best dev step,
above the default's 67.3 on this data; table: docs/joyful.md (``python -m
emojax.models.joyful.report``).
"""

import ml_collections

from emojax.configs.joyful import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.contrast.weight = 0.0
    return config
