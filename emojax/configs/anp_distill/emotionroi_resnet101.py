"""Stage 2 on EmotionROI at the paper's scale (an accelerator): ResNet-101 distilled from the
EmotionROI teacher, binary.

    emojax train --config=emojax/configs/anp_distill/emotionroi_resnet101.py \
        --workdir=workdirs/anp_distill_roi/emotionroi_resnet101 \
        --config.stages_root=workdirs/anp_distill_roi \
        --config.data.manual_dir=/data/EmotionROI \
        --config.data.regions_file=/data/roi_regions.jsonl \
        --config.model.student.pretrained=resnet101.safetensors   # optional, see below

Pretrained weights: ``emojax convert --model=resnet --input=<HF microsoft/resnet-101 dir>
--output=resnet101.safetensors`` (the paper uses COCO-pretrained weights; any ResNet-101 converts).
Teacher: STAGES_ROOT/emotionroi_teacher (emotionroi_teacher.py). Paper: input 255x255, batch 16,
lr 1e-4, alpha 1; reported 83.08 % accuracy, F 0.74 (ResNet101 alone 78.43 / 0.73: run with
--config.model.alpha=0). Six classes: --config.model.num_classes=6. Not run here (no data).
"""

from emojax.configs.anp_distill import emotionroi_teacher


def get_config():
    config = emotionroi_teacher.get_config()
    config.model.stage = "student"
    config.model.alpha = 1.0
    config.model.teacher_workdir = config.get_ref("stages_root") + "/emotionroi_teacher"
    config.model.student.update(depth=101, width=64)
    config.data.global_batch_size = 16
    config.optimizer.update(name="adam", learning_rate=1e-4, warmup_steps=100)
    config.train.update(num_steps=5000, eval_every=500, save_every=500)
    config.train.compute_dtype = "bfloat16"
    return config
