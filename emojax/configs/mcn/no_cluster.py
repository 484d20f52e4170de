"""MCN ablation: without the k-means clustering loss (no extra state).

    emojax train --config=configs/mcn/no_cluster.py --workdir=workdirs/mcn_no_cluster

Differences from default.py: ``model.w_cluster = 0`` (no k-means, no queue, no clustering
loss; MMS over all pairs + reconstruction only). Everything else as default.py.
Expected result: see docs/mcn.md (Results; to be filled by the results runs).
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.w_cluster = 0.0
    return config
