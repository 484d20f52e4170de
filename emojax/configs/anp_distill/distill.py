"""Stage 2: the ResNet distilled from the frozen teacher of stage 1 (the paper's proposal).

    emojax quickstart anp_distill                  # runs teacher -> student -> distill
    emojax train --config=emojax/configs/anp_distill/distill.py \
        --workdir=workdirs/anp_distill/distill --config.stages_root=workdirs/anp_distill

L = (alpha L_sp + L_r) / (1 + alpha), alpha = 1 (the paper's), L_sp against P_SB of the teacher
in STAGES_ROOT/teacher (frozen variables, saved once in this workdir). Alpha sweep:
--config.model.alpha=0.5 (or 2). Measured (seeds 0/1/2, 600 training images): test accuracy
72.6 +- 0.8 %, F1 0.658 +- 0.012; the ResNet alone 70.0 +- 1.9 %, the teacher's P_SB 73.0 +- 0.8 %
(docs/anp_distill.md).
"""

from emojax.configs.anp_distill import student


def get_config():
    config = student.get_config()
    config.model.alpha = 1.0
    config.model.teacher_workdir = config.get_ref("stages_root") + "/teacher"
    return config
