"""Shared fields of the anp_distill configs (not a run by itself: see teacher.py, student.py,
distill.py, emotionroi_resnet101.py)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.method = "anp_distill"
    config.seed = 0
    # where the stages' workdirs live: WORKDIR/teacher, ... (`emojax quickstart` sets it)
    config.stages_root = ml_collections.FieldReference("workdirs/anp_distill")

    m = config.model = ml_collections.ConfigDict()
    m.stage = "teacher"  # "teacher" (stage 1) or "student" (stage 2)
    m.num_classes = 2  # 2: negative/positive (the paper); 6: EmotionROI's emotions
    m.alpha = 0.0  # weight of L_sp (soft targets P_SB); 0 = labels only
    m.teacher_workdir = ""  # the stage-1 run whose params/teacher are the frozen teacher
    m.weighting = "saliency"  # region weights of P_SB: "saliency" (paper) or "uniform"
    # Itti-Koch levels: the paper's (2,3,4)/(3,4)/4 suit >= 256 px; one octave finer for 64 px
    m.saliency = ml_collections.ConfigDict(dict(centers=(1, 2, 3), deltas=(2, 3), map_level=3))
    m.teacher = ml_collections.ConfigDict(
        dict(embed_dim=10, num_layers=1, num_heads=2, mlp_dim=32, dropout_rate=0.1)
    )
    m.student = ml_collections.ConfigDict(dict(depth=18, width=16, pretrained=""))

    d = config.data = ml_collections.ConfigDict()
    d.source = "builtin"  # or "emotion_roi", "twitter_borth" (+ regions_file)
    d.data_seed = 0
    d.num_classes = m.get_ref("num_classes")
    d.image_size = 64
    d.max_regions = 4
    d.vocab_size = 4096  # hashed word buckets (0 = padding, 1 = end)
    d.adjectives_per_class = 120
    d.positive_rate = 0.4  # binary prior (EmotionROI's merge: 1/3 positive)
    d.main_agree = 0.9
    d.minor_agree = 0.7
    d.anp_precision = 0.85
    d.background_valence = 15.0  # background brightness shift per unit of class valence
    d.colour_mix = 0.3  # share of the class colour in an object's colour (rest: its label's)
    d.label_noise = 0.1
    d.num_train = 600  # small, like the paper's sets (EmotionROI 1,584 train, Twitter 482)
    d.num_validation = 300
    d.num_test = 1000
    # real data (regions.py)
    d.regions_file = ""
    d.manual_dir = ""
    d.data_dir = ""
    d.split_seed = 0
    d.global_batch_size = 32
    d.shuffle_seed = 0
    d.worker_count = 0
    d.num_epochs = ml_collections.config_dict.placeholder(int)

    o = config.optimizer = ml_collections.ConfigDict()
    o.name = "adam"
    o.learning_rate = 3e-3
    o.schedule = "cosine"
    o.warmup_steps = 20
    o.grad_clip_norm = 1.0

    t = config.train = ml_collections.ConfigDict()
    t.num_steps = 400
    t.log_every = 50
    t.eval_every = 200
    t.save_every = 200
    t.keep_last = 1
    t.keep_best_metric = "eval/accuracy"
    t.keep_best_mode = "max"
    t.compute_dtype = "float32"

    config.eval = ml_collections.ConfigDict(dict(split="validation", num_batches=0))
    return config
