"""MCN study (seed 004): video-audio + all pairs (the video-audio pair counted twice).

    emojax train --config=configs/mcn/pairs_va_all.py --workdir=workdirs/mcn_pairs_va_all

Differences from default.py: the ``va_all`` pair set of method.py,
``model.pairs = ("audio-video", "video-text", "audio-text", "audio-video")``: MMS over all pairs
with the video-audio pair counted twice. Everything else as default.py.
Measured (seeds 0/1/2): test text -> (video + audio) median rank 588 +- 15 of 2,000 (default
581 +- 4, chance 1000.5); docs/mcn.md has the table.
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.pairs = ("audio-video", "video-text", "audio-text", "audio-video")  # "va_all"
    return config
