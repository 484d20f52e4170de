"""Joyful (seed 001): joint multimodal fusion + graph contrastive learning for emotion
recognition in conversation (Li et al., EMNLP 2023).

    model.py   Flax modules: fusion (the official code's autoencoders + basis attention, or the
               paper's with topic smoothing and a global transformer), masked context
               transformer, RGCN + TransformerConv over the dialogue graph, classifier
    graph.py   dialogue graphs: window edges, relation types, padded batches (collate), views
    method.py  the ``joyful`` Method: CE/BCE + contrast + fusion losses, weighted-F1 evaluator
               (dev metrics plus the test split at the same checkpoint, for model selection)
    report.py  test score at the best-dev checkpoint (quickstart report), the results table

This file only declares names: nothing heavy is imported until the method is used.
"""

METHODS = {"joyful": "emojax.models.joyful.method:Joyful"}
QUICKSTART_REPORT = "emojax.models.joyful.report:quickstart_report"
