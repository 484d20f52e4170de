"""Stage 1 on EmotionROI: the region-text teacher on your regions file (binary, the paper's).

    emojax train --config=emojax/configs/anp_distill/emotionroi_teacher.py \
        --workdir=workdirs/anp_distill_roi/emotionroi_teacher \
        --config.data.manual_dir=/data/EmotionROI \
        --config.data.regions_file=/data/roi_regions.jsonl

The regions JSONL (detector boxes + labels + SentiBank top ANPs per region) is yours to produce;
schema in emojax/models/anp_distill/regions.py. The paper: word embedding 10, batch 20, lr 0.003.
Paper's result for the teacher (P_SB): 78.57 % accuracy, F 0.75. Not run here (no data).
"""

from emojax.configs.anp_distill import base


def get_config():
    config = base.get_config()
    config.stages_root = "workdirs/anp_distill_roi"
    config.model.stage = "teacher"
    config.model.saliency.update(centers=(2, 3, 4), deltas=(3, 4), map_level=4)  # the paper's
    d = config.data
    d.source = "emotion_roi"
    d.image_size = 255  # the paper's input size
    d.max_regions = 8
    d.vocab_size = 16384
    d.global_batch_size = 20
    config.optimizer.learning_rate = 3e-3
    config.train.num_steps = 2000
    config.eval.split = "validation"  # 10 % of train held out (regions.py)
    return config
