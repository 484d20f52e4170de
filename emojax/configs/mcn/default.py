"""MCN on the built-in clips (emojax_senses scenes as video / audio / text), CPU-sized.

    emojax quickstart mcn                                   # train + whole-split test + report
    emojax train --config=configs/mcn/default.py --workdir=workdirs/mcn

Small towers (embedding 128, ResDAVEnet widths 32..256), all three MMS pairs, k-means with
K = 32 over a 2,048-row queue refit every 20 steps, reconstruction weight 50 (the paper's
objective at a CPU scale). Measured (seeds 0/1/2, 2026-12-07): text -> (video + audio)
zero-shot retrieval on the 2,000 word-disjoint test scenes, median rank 581 +- 4 (chance 1000.5),
R@10 0.0087 (chance 0.005), below a ridge-regression probe (392); docs/mcn.md has the table
(``python -m benchmarks.mcn_study``).
Ablations: --config.model.w_cluster=0 (no clustering), --config.model.w_recon=0.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "mcn"
    config.seed = 0

    m = config.model = ml_collections.ConfigDict()
    m.embed_dim = 128  # code 6144, slides 4096
    m.video_dim = 512
    m.word_dim = 384  # MiniLM token embeddings (MCN: 300-d word2vec)
    m.n_mels = 40
    m.audio_widths = (32, 32, 64, 128, 256)  # MCN: (128, 128, 256, 512, 1024)
    m.audio_depths = (1, 1, 1, 1)  # MCN: (2, 2, 2, 2)
    m.recon_hidden = 256  # MCN: 1024
    m.pairs = ("video-text", "audio-text", "audio-video")  # repeats weight a pair (pairs_*.py)
    m.spaces = ()  # e.g. ("video_audio",): the seed's extra spaces
    m.margin = 0.001
    m.w_cluster = 1.0
    m.w_recon = 50.0
    m.detach_recon_targets = False  # the official code back-propagates into the targets
    m.cluster = ml_collections.ConfigDict(
        dict(
            num_clusters=32,
            queue_size=2048,
            refit_every=20,
            reset_every=0,
            max_iter=20,
            fused_only=False,
        )
    )

    d = config.data = ml_collections.ConfigDict()
    d.source = "emojax_senses"
    d.data_dir = ""
    d.data_seed = 0
    d.num_train = 20_000
    d.num_validation = 2_000
    d.num_test = 2_000
    d.audio_frames = 48
    d.max_words = 5
    d.minilm_path = ""
    d.global_batch_size = 128
    d.shuffle_seed = 0
    d.worker_count = 0
    d.num_epochs = ml_collections.config_dict.placeholder(int)

    o = config.optimizer = ml_collections.ConfigDict()
    o.name = "adam"
    o.learning_rate = 1e-3  # MCN: 1e-4 at batch 4096
    o.schedule = "cosine"
    o.warmup_steps = 50
    o.grad_clip_norm = 1.0

    t = config.train = ml_collections.ConfigDict()
    t.num_steps = 600
    t.log_every = 50
    t.eval_every = 200
    t.save_every = 200
    t.keep_last = 2
    t.keep_best_metric = "eval/t2va_R@5"
    t.keep_best_mode = "max"

    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
