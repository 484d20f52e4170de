"""Joyful on MELD, text features computed from the official CSVs with our MiniLM tower.

    emojax train --config=emojax/configs/joyful/meld.py --workdir=workdirs/joyful_meld \
        --config.data.manual_dir=/path/to/MELD.Raw   # train/dev/test_sent_emo.csv

Text only by default (384-d MiniLM sentence embeddings; the released Joyful MELD features are
missing, MERC-main #2): model.modalities = ("text",) works (the official code crashes on one
modality). Audio/visual vectors a user has: --config.data.audio_file=audio.npz (keys
"{split}_dia{D}_utt{U}") plus --config.model.modalities="('audio','text')" and data.dims.
Speaker ids per dialogue, up to 9 -> 162 relations; 7 classes (DialogueRNN order); no class
weights (the official code copies IEMOCAP's). Reported by the paper (its own features): acc
62.53, weighted F1 61.77. Not run here (needs the CSVs).
"""

import ml_collections

from emojax.configs.joyful import iemocap6


def get_config() -> ml_collections.ConfigDict:
    config = iemocap6.get_config()
    m = config.model
    m.modalities = ("text",)
    m.num_classes = 7
    m.graph.n_speakers = 9
    d = config.data
    d.source = "meld"
    d.dims = {"text": 384}
    d.audio_file = ""
    d.visual_file = ""
    d.max_len = 40  # the bucket; a longer dialogue is an error naming it (raise this then)
    config.train.num_steps = 1650  # 50 epochs of 33 batches (1038 dialogues / 32)
    config.train.eval_every = 33
    config.train.save_every = 33
    config.train.log_every = 33
    return config
