"""Joyful on CMU-MOSEI emotions (multi-label, BCE-with-logits summed over 6 emotions).

    emojax train --config=emojax/configs/joyful/mosei.py --workdir=workdirs/joyful_mosei \
        --config.data.manual_dir=/path/with/data_mosei.pkl

Audio 80 / text 768 / visual 35 (the official fusion crashes on these widths; ours takes them
from data.dims); prediction logit > 0; the metric is the mean over emotions of each emotion's
weighted F1 (``weighted_f1``) plus the multi-label weighted F1. Contrast weight 0.1 (the paper's
MOSEI beta). Reported by the paper: weighted F1 76.9 (binary per emotion), 77.2 (multi-label).
Not run here (needs the pickle).
"""

import ml_collections

from emojax.configs.joyful import iemocap6


def get_config() -> ml_collections.ConfigDict:
    config = iemocap6.get_config()
    m = config.model
    m.num_classes = 6
    m.multilabel = True
    m.contrast.weight = 0.1
    m.graph.n_speakers = 2
    d = config.data
    d.source = "mosei"
    d.dims = {"audio": 80, "text": 768, "visual": 35}
    d.max_len = 64  # raise if a video has more utterances (the collate says so)
    config.train.num_steps = 3550  # 50 epochs of 71 batches (2249 videos / 32)
    config.train.eval_every = 71
    config.train.save_every = 71
    config.train.log_every = 71
    return config
