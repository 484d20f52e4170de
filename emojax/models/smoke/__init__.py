"""The smoke method: a two-tower contrastive model on generated paired data (tests and CI).

    model.py   Flax modules (Tower, TwoTowerModel) and the generated data (PairedGaussianSource)
    method.py  the Method TwoTower, registered as ``two_tower`` (configs/smoke.py) and ``smoke``

This file only declares names; nothing heavy is imported until the method is used.
"""

METHODS = {
    "two_tower": "emojax.models.smoke.method:TwoTower",
    "smoke": "emojax.models.smoke.method:TwoTower",
}
