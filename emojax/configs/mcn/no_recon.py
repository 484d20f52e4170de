"""MCN ablation: without the reconstruction loss (no reconstruction heads).

    emojax train --config=configs/mcn/no_recon.py --workdir=workdirs/mcn_no_recon

Differences from default.py: ``model.w_recon = 0`` (the model has no ``recon_*`` heads; MMS over
all pairs + clustering only). Everything else as default.py.
Measured (seeds 0/1/2): test text -> (video + audio) median rank 565 +- 2 of 2,000 (default
581 +- 4, chance 1000.5); docs/mcn.md has the table.
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.w_recon = 0.0
    return config
