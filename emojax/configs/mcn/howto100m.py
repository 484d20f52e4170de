"""MCN at the paper's scale on HowTo100M features (accelerators: GPU cluster / TPU pod, FSDP, bf16).

    emojax train --config=configs/mcn/howto100m.py --workdir=gs://BUCKET/mcn_howto100m \
        --config.data.manual_dir=/path/to/howto100m \
        --config.data.word_vectors_path=/path/to/GoogleNews-vectors-negative300.bin \
        --config.data.eval_manual_dir=/path/to/youcook2_features
    # 2-way data x 8-way FSDP on 16 devices:
    emojax train --config=configs/mcn/howto100m.py --workdir=DIR --config.mesh.data=2 \
        --config.mesh.fsdp=8 [the data flags above]
    # no evaluation files: --config.train.eval_every=0 (or --config.data.eval_source='' to
    # evaluate on howto100m_features' own splits/validation.txt videos)

Files the user supplies (nothing is downloaded; layouts in docs/data.md and docs/mcn.md
"Real data"):

* ``data.manual_dir``: ``howto100m_features`` (caption.json, splits/train.txt, video/<id>.npy
  [seconds, 4096] = 2D ResNet-152 (2048) + 3D ResNeXt-101 (2048) per second, audio/<id>.npy
  [frames, 40] log-mel at 100 frames/s);
* ``data.word_vectors_path``: 300-d word vectors, word2vec binary (GoogleNews, as MCN) or a
  text file ``word v1 ... v300`` per line (``data.word_vectors_limit`` keeps the first N words:
  the full GoogleNews table is 3.6 GB per process, and each grain worker loads its own copy);
* ``data.eval_manual_dir``: ``retrieval_features`` (splits/validation.tsv ``clip_id<TAB>caption``,
  video/<clip_id>.npy, audio/<clip_id>.npy), e.g. YouCook2 validation; MSR-VTT 1k-A as
  splits/test.tsv with ``--config.eval.split=test``.

Per clip (emojax.models.mcn.data.FeatureClips): video max-pooled over the clip's seconds, the 2D
and 3D halves L2-normalised separately (``data.video_parts``); audio cropped / zero-padded to
1,000 frames with ``audio_nframes``; the caption lower-cased, split into ``[\\w']+`` tokens, words
missing from the table skipped, the first 20 kept (a caption with none raises, naming the clip).
MCN samples 32 clips from each of 128 videos per batch (4,096 rows) and pushes 16 of each
video's 32 clips into the k-means queue; here batches are 4,096 shuffled clips and every row is
pushed. Evaluation: the whole split, text -> (video + audio) retrieval, once per epoch.

Differences from default.py, as the official code (REFERENCES.md "MCN"): embedding 6144, video
4096-d, word2vec 300-d with up to 20 words, audio 1000 log-mel frames through ResDAVEnet widths
(128, 128, 256, 512, 1024) with 2 blocks per stage, reconstruction hidden 1024, K = 256 clusters
over a 40,960-row queue refit every 20 steps and reset each epoch, global batch 4096, Adam 1e-4
with a cosine schedule and 5,000 warmup steps, about 30 epochs; bfloat16 compute; parameters,
optimizer state and the k-means queue sharded over the ``fsdp`` axis (every device on it).
Expected result: see docs/mcn.md (no HowTo100M run has been made with emojax; the paper reports
YouCook2 / MSR-VTT zero-shot retrieval, confirm its table before quoting numbers). The data path
is tested end to end on a tiny synthetic layout (tests/test_mcn_data.py).
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
    d.audio_frames_per_second = 100  # howto100m_features' log-mel frame rate
    d.max_seconds = 32  # longer caption segments are cut
    d.video_parts = (2048, 2048)  # 2D + 3D features, each L2-normalised after the max-pool
    d.audio_frames = 1000
    d.max_words = 20
    d.word_vectors_path = ""  # word2vec binary / GloVe-style text, 300-d
    d.word_vectors_format = "auto"  # "auto" (*.bin -> binary), "text", "binary"
    d.word_vectors_limit = 0  # 0: every word of the file
    d.lowercase = True
    d.eval_source = "retrieval_features"  # "": howto100m_features' validation split
    d.eval_manual_dir = ""  # the retrieval_features files (YouCook2 / MSR-VTT clips)
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
    t.eval_every = STEPS_PER_EPOCH  # whole-split retrieval on config.eval.split
    t.save_every = 2_000
    t.keep_best_metric = ""  # keep the last checkpoints (the eval split is a test set)
    t.compute_dtype = "bfloat16"
    config.eval.split = "validation"
    return config
