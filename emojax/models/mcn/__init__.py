"""MCN (seed 004): Multimodal Clustering Network, and the seed's study of which pairs to contrast.

    model.py   Flax modules: video / audio (ResDAVEnet) / text towers, reconstruction heads,
               optional extra embedding spaces
    method.py  the ``mcn`` Method: MMS over configurable pairs, k-means clustering as extra state
               outside the gradient, reconstruction; whole-split retrieval evaluator
    data.py    the built-in clips made from ``emojax_senses`` scenes

This file only declares names: nothing heavy is imported until the method is used.
"""

METHODS = {"mcn": "emojax.models.mcn.method:MCN"}
