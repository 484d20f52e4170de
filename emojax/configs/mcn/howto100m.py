"""MCN at the paper's scale on HowTo100M features (accelerators: GPU cluster / TPU pod, FSDP, bf16).

    emojax train --config=configs/mcn/howto100m.py --workdir=gs://BUCKET/mcn_howto100m \
        --config.data.manual_dir=/path/to/howto100m
    # 2-way data x 8-way FSDP on 16 devices:
    emojax train --config=configs/mcn/howto100m.py --workdir=DIR --config.mesh.data=2 \
        --config.mesh.fsdp=8

NOT RUNNABLE YET: ``data.source = "howto100m_features"`` is not wired into the ``mcn`` method;
``MCN.data_source`` raises a clear error naming ``config.data.source``. The config loads,
validates and builds the model (tests/test_mcn_method.py), so it documents the target. What a
user needs before it trains:

* the ``howto100m_features`` files in ``data.manual_dir`` (layout in emojax/data/howto100m.py:
  caption.json, splits/train.txt, video/<id>.npy [seconds, 4096] 2D+3D features,
  audio/<id>.npy [frames, 40] log-mel at 100 frames/s);
* a 300-d word2vec table (GoogleNews, as MCN) and a tokeniser from caption text to at most
  ``data.max_words`` word vectors with a mask; a local file, nothing is downloaded;
* the method's data hooks for that source (not written yet): per clip, max-pool the 2D and 3D
  video features over the clip and L2-normalise; crop / pad audio to ``data.audio_frames`` with
  ``audio_nframes``; the caption's word vectors; MCN samples 32 clips from each of 128 videos per
  batch (4,096 rows) and pushes 16 of each video's 32 clips into the k-means queue (here every
  row of the batch is pushed);
* an evaluation split (YouCook2 / MSR-VTT style clip features + captions) for the whole-split
  text -> (video + audio) retrieval evaluator; until then ``train.eval_every = 0``.

Differences from default.py, as the official code (REFERENCES.md "MCN"): embedding 6144, video
4096-d, word2vec 300-d with up to 20 words, audio 1000 log-mel frames through ResDAVEnet widths
(128, 128, 256, 512, 1024) with 2 blocks per stage, reconstruction hidden 1024, K = 256 clusters
over a 40,960-row queue refit every 20 steps and reset each epoch, global batch 4096, Adam 1e-4
with a cosine schedule and 5,000 warmup steps, about 30 epochs; bfloat16 compute; parameters,
optimizer state and the k-means queue sharded over the ``fsdp`` axis (every device on it).
Expected result: see docs/mcn.md (no HowTo100M run has been made with emojax; the paper reports
YouCook2 / MSR-VTT zero-shot retrieval, confirm its table before quoting numbers).
"""

import ml_collections

from emojax.configs.mcn import default

# HowTo100M: about 1.22 M videos; 128 videos (x 32 clips = 4,096 rows) per step.
STEPS_PER_EPOCH = 9_531
EPOCHS = 30


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    m = config.model
    m.embed_dim = 6144  # the official code (the seed's slides: 4096)
    m.video_dim = 4096
    m.word_dim = 300
    m.audio_widths = (128, 128, 256, 512, 1024)
    m.audio_depths = (2, 2, 2, 2)
    m.recon_hidden = 1024
    m.cluster.num_clusters = 256
    m.cluster.queue_size = 40_960
    m.cluster.refit_every = 20
    m.cluster.reset_every = STEPS_PER_EPOCH  # the official code resets at each epoch start

    d = config.data
    d.source = "howto100m_features"
    d.manual_dir = ""  # the howto100m_features files (see the docstring)
    d.audio_frames = 1000
    d.max_words = 20
    d.global_batch_size = 4096
    d.worker_count = 8

    o = config.optimizer
    o.learning_rate = 1e-4
    o.schedule = "cosine"
    o.warmup_steps = 5000

    config.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))

    t = config.train
    t.num_steps = STEPS_PER_EPOCH * EPOCHS
    t.log_every = 100
    t.eval_every = 0  # no evaluation split wired yet (see the docstring)
    t.save_every = 2_000
    t.keep_best_metric = ""
    t.compute_dtype = "bfloat16"
    return config
