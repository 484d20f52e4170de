"""MCN ablation: without the k-means clustering loss (no extra state).

    emojax train --config=configs/mcn/no_cluster.py --workdir=workdirs/mcn_no_cluster

Differences from default.py: ``model.w_cluster = 0`` (no k-means, no queue, no clustering
loss; MMS over all pairs + reconstruction only). Everything else as default.py.
Measured (seeds 0/1/2): test text -> (video + audio) median rank 576 +- 8 of 2,000 (default
581 +- 4, chance 1000.5); docs/mcn.md has the table.
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.w_cluster = 0.0
    return config
