"""Joyful on IEMOCAP-6 (COGMEN/Joyful feature pickle), the official code's architecture and
objective at full width.

    emojax train --config=emojax/configs/joyful/iemocap6.py --workdir=workdirs/joyful_iemocap6 \
        --config.data.manual_dir=/path/with/data_iemocap.pkl

Audio 100 / text 768 (SBERT) / visual 512; fusion local 460, autoencoders 1024 -> 512 (node input
1024); context 4 post-norm layers, 8 heads, FFN 2048, -> 100 (with a padding mask); window 8/8;
RGCN(100) -> TransformerConv(100 x 4) on 8 relations; Adam 3e-5, wd 1e-8, batch 32 dialogues,
dropout 0.3, 50 epochs (108 train dialogues / 32 = 4 steps per epoch: 200 steps); CE + 0.2
contrast + 0.05 fusion; model selection on dev weighted F1 (the test split is scored at each
evaluation; the report takes the best-dev row). Reported by the paper: acc 70.55,
weighted F1 71.03. Not run here (needs the pickle): no result of ours to quote yet.
"""

import ml_collections

from emojax.configs.joyful import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    m = config.model
    m.num_classes = 6
    m.fusion.update(local_dim=460, hidden=1024, code_dim=512, chunk=1024)
    m.context.update(layers=4, heads=8, mlp_dim=2048, out_dim=100)
    m.graph.update(window_past=8, window_future=8, n_speakers=2, heads=4)
    m.classifier_hidden = 100

    d = config.data
    d.source = "iemocap"
    d.config_name = "iemocap_6"
    d.dims = {"audio": 100, "text": 768, "visual": 512}
    d.max_len = 128  # the bucket; a longer dialogue is an error naming it (raise this then)
    d.global_batch_size = 32
    d.num_epochs = None

    o = config.optimizer
    o.learning_rate = 3e-5
    o.weight_decay = 1e-8
    o.schedule = "constant"
    o.warmup_steps = 0

    t = config.train
    t.num_steps = 200  # 50 epochs of 4 batches
    t.eval_every = 4
    t.save_every = 4
    t.log_every = 4
    return config
