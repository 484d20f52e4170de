"""MCN study (seed 004): a video-audio space besides the shared one (several embedding spaces).

    emojax train --config=configs/mcn/multispace.py --workdir=workdirs/mcn_multispace

Differences from default.py: ``model.spaces = ("video_audio",)``. All three pairs are still
contrasted in the shared space (``model.pairs`` as default.py); on top of it the model adds a
``video_audio`` space (linear heads ``space_video_audio_{video,audio}`` on the tower outputs)
and the loss adds MMS of the video-audio pair in that space, so what only sight and sound share
(background, noise) has a space of its own. Evaluation still scores ``t . (v + a)`` in the
shared space. Everything else as default.py.
Measured (seeds 0/1/2): test text -> (video + audio) median rank 579 +- 12 of 2,000 (default
581 +- 4, chance 1000.5); docs/mcn.md has the table.
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.spaces = ("video_audio",)
    return config
