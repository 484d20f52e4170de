"""EmoSense-MMC (seed 000): emotion from the five senses by multimodal contrast.

    model.py       Flax modules: EmoSenseModel, TouchEncoder, EmoCoView, the emotion head
    compose.py     the five senses on the complex plane (ComplexComposition)
    text.py        frozen MiniLM features / tokens of the identifier vocabulary
    method.py      the ``emosense`` Method and its data adapters (WordFeatures, WordTokens)
    evaluation.py  full-split predictions, retrieval R@k, macro-F1, zero-shot identifiers
    invert.py      emotion -> sense weights + identifiers
    adjust.py      per-person kNN adjustment (PersonalIndex)
    pll.py         masked-LM pseudo-log-likelihood scoring
    report.py      PNG plots and the markdown report
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
