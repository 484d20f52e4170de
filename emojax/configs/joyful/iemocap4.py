"""Joyful on IEMOCAP-4 (hap, sad, neu, ang), as iemocap6.py otherwise.

    emojax train --config=emojax/configs/joyful/iemocap4.py --workdir=workdirs/joyful_iemocap4 \
        --config.data.manual_dir=/path/with/data_iemocap_4.pkl

Reported by the paper: acc 85.6, weighted F1 85.7. Not run here (needs the pickle).
"""

import ml_collections

from emojax.configs.joyful import iemocap6


def get_config() -> ml_collections.ConfigDict:
    config = iemocap6.get_config()
    config.model.num_classes = 4
    config.data.config_name = "iemocap_4"
    return config
