"""MCN ablation: without the reconstruction loss (no reconstruction heads).

    emojax train --config=configs/mcn/no_recon.py --workdir=workdirs/mcn_no_recon

Differences from default.py: ``model.w_recon = 0`` (the model has no ``recon_*`` heads; MMS over
all pairs + clustering only). Everything else as default.py.
Expected result: see docs/mcn.md (Results; to be filled by the results runs).
"""

import ml_collections

from emojax.configs.mcn import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.w_recon = 0.0
    return config
