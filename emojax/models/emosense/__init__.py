"""EmoSense-MMC (seed 000): emotion from the five senses by multimodal contrast.

    model.py       Flax modules: EmoSenseModel, TouchEncoder, EmoCoView, the emotion head
    compose.py     the five senses on the complex plane (ComplexComposition)
    text.py        frozen MiniLM features / tokens of the identifier vocabulary
    method.py      the ``emosense`` Method and its data adapters (WordFeatures, WordTokens)
    evaluators.py  EmoSenseEvaluator: whole-split retrieval R@k, head R@k, macro-F1 (both rules)
    evaluation.py  per-example outputs of a trained workdir, zero-shot identifiers
    invert.py      emotion -> sense weights + identifiers
    adjust.py      per-person kNN adjustment (PersonalIndex)
    pll.py         masked-LM pseudo-log-likelihood scoring
    report.py      the quickstart report hook: zero-shot scores, sense weights, PNG plots
    cli.py         ``emojax invert`` and ``emojax adjust``

This file only declares names (read by ``emojax.models`` and ``emojax.cli``): nothing heavy is
imported until a method or command is used.
"""

# method name (config.method) -> "module:Class"
METHODS = {"emosense": "emojax.models.emosense.method:EmoSense"}

# `emojax <command>` -> (module with main(command, argv), one-line help)
COMMANDS = {
    "invert": ("emojax.models.emosense.cli", "find sense values that produce an emotion"),
    "adjust": ("emojax.models.emosense.cli", "per-person adjusted predictions"),
}

# `emojax quickstart emosense`: (extra metrics, plots) added to the generic report
QUICKSTART_REPORT = "emojax.models.emosense.report:quickstart_report"
