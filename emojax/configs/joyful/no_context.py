"""Per-utterance baseline on the built-in dialogues: Joyful's fusion + classifier, no context.

    emojax train --config=emojax/configs/joyful/no_context.py --workdir=workdirs/joyful_no_context

Differences from default.py: no context transformer (projection only), no graph, no contrast:
each utterance is classified from its own features. The built-in data makes most utterances'
emotions depend on the speaker's other utterances, so this model must be clearly worse (see the
results table in docs/joyful.md). Measured (seeds 0/1/2, 500 steps): test weighted F1 50.4 +- 0.2 %,
accuracy 50.4 +- 0.2 % at the best dev step, against 67.3 for default.py.
"""

import ml_collections

from emojax.configs.joyful import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.context.layers = 0
    config.model.graph.enabled = False
    config.model.contrast.weight = 0.0
    return config
