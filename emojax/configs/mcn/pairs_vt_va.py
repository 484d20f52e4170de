"""MCN study (seed 004): contrast video-text + video-audio only (no audio-text pair).

    emojax train --config=configs/mcn/pairs_vt_va.py --workdir=workdirs/mcn_pairs_vt_va

Differences from default.py: ``model.pairs = ("video-text", "audio-video")``, the ``vt_va``
set of method.py: MMS over video-text and audio-video; the audio-text pair is dropped, so audio
and text meet only through video and the clustering.
Everything else (towers, k-means, reconstruction, data, optimizer) as default.py.
Measured (seeds 0/1/2): test text -> (video + audio) median rank 604 +- 15 of 2,000 (default
581 +- 4, chance 1000.5); docs/mcn.md has the table.
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.pairs = ("video-text", "audio-video")  # PAIR_SETS["vt_va"]
    return config
