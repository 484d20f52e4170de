"""Smoke config: the two-tower contrastive method on generated data (tests, CI, examples).

    emojax train --config=configs/smoke.py --workdir=/tmp/smoke
    emojax train --config=configs/smoke.py --workdir=/tmp/smoke --config.mesh.fsdp=8 \
        --config.mesh.data=1 --config.train.num_steps=200

Every section below except ``model`` and the method-specific ``data`` keys is the trainer's
(docs/training.md lists each key); other methods' configs copy this shape.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "two_tower"
    config.seed = 0

    config.model = ml_collections.ConfigDict()
    config.model.hidden_dim = 64
    config.model.embed_dim = 32
    config.model.num_layers = 2

    config.data = ml_collections.ConfigDict()
    config.data.global_batch_size = 32
    config.data.shuffle_seed = 0
    config.data.worker_count = 0
    # None: repeat forever (train.num_steps ends the run); a typed placeholder stays overridable.
    config.data.num_epochs = ml_collections.config_dict.placeholder(int)
    # two_tower's generated data (method-specific keys).
    config.data.num_train = 4096
    config.data.num_eval = 256
    config.data.dim_a = 24
    config.data.dim_b = 16
    config.data.latent_dim = 8
    config.data.noise_std = 0.1
    config.data.data_seed = 0

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 3e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 10
    config.optimizer.end_learning_rate_factor = 0.0
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-8
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 1e-4
    config.optimizer.grad_clip_norm = 1.0
    config.optimizer.grad_accum_steps = 1

    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1  # -1: fill with the remaining devices
    config.mesh.fsdp = 1
    config.mesh.tensor = 1

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = 100
    config.train.log_every = 10
    config.train.eval_every = 50
    config.train.save_every = 50
    config.train.keep_last = 2
    config.train.keep_best_metric = "eval/loss"  # "" disables keep-best
    config.train.keep_best_mode = "min"  # min | max
    config.train.nan_policy = "stop"
    config.train.compute_dtype = "float32"

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "validation"
    config.eval.num_batches = 0  # 0: every example of the split
    return config
