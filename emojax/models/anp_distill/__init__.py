"""ANP distillation (seed 002): a region-level adjective-noun teacher distilled into an image CNN.

    model.py     Flax modules: RegionTextEncoder (the teacher, "Multi Region SentiBank"),
                 Student (ResNet 18/50/101 + dense), region_weights / combine_regions (P_SB)
    method.py    the ``anp_distill`` Method: stage "teacher" (per-region CE) or "student"
                 (the seed's (alpha L_sp + L_r) / (1 + alpha) against the frozen teacher's P_SB);
                 whole-split accuracy / F1 evaluator
    data.py      the built-in images (objects with boxes, labels, NRC adjectives) and the
                 region-text tokens shared with real data
    regions.py   the per-image regions JSONL (schema, validation) joined with emotion_roi /
                 twitter_borth
    convert.py   PyTorch ``nn.TransformerEncoder`` teacher -> Flax params
    table.py     ``emojax anp_table``: Table 1 and the alpha sweep over seeds

This file only declares names: nothing heavy is imported until the method is used.
"""

METHODS = {"anp_distill": "emojax.models.anp_distill.method:ANPDistill"}

COMMANDS = {
    "anp_table": (
        "emojax.models.anp_distill.table",
        "ANP distillation: Table 1 (ResNet / teacher / distilled) and the alpha sweep over seeds",
    ),
}

# `emojax quickstart anp_distill`: configs/anp_distill/<stage>.py in this order, each in
# WORKDIR/<stage>; distill.py reads the teacher from WORKDIR/teacher (config.stages_root).
QUICKSTART_STAGES = ("teacher", "student", "distill")
