"""UniEmoX (seed 003): masked-image pretraining guided by CLIP semantics, scene and person views.

    data.py    the built-in scene photos (``emojax_senses`` scenes with a person placed in them,
               its box, attributes computed from the pixels, attribute captions)
    views.py   the views inside the jitted step: crops of boxes, random crops, normalisation
    model.py   Flax modules: two-view MAE pretraining model, ViT classifier
    method.py  the Methods ``uniemox_clip`` (teacher), ``uniemox`` (pretraining, frozen teacher),
               ``uniemox_classify`` (fine-tuning / linear probe)

``emojax quickstart uniemox`` runs the stages of QUICKSTART_STAGES in order (configs/uniemox/).
This file only declares names: nothing heavy is imported until the method is used.
"""

METHODS = {
    "uniemox": "emojax.models.uniemox.method:UniEmoX",
    "uniemox_clip": "emojax.models.uniemox.method:UniEmoXCLIP",
    "uniemox_classify": "emojax.models.uniemox.method:UniEmoXClassifier",
}
QUICKSTART_STAGES = ("clip_teacher", "pretrain", "finetune", "linear_probe")
