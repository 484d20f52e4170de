"""The ``emojax`` command: ``emojax train | eval | convert | invert | adjust ...``.

Each subcommand lives in its own module exposing ``main(argv)`` (an absl app main) and is
imported only when used, so ``emojax --help`` is fast and a subcommand's dependencies
do not load for the others.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "train": ("emojax.train.cli", "train a method from a config"),
    "eval": ("emojax.train.cli", "evaluate a checkpoint of a workdir"),
    "convert": ("emojax.convert.cli", "convert PyTorch weights to Flax params"),
    "invert": ("emojax.models.emosense.cli", "find sense values that produce an emotion"),
    "adjust": ("emojax.models.emosense.cli", "per-person adjusted predictions"),
}


def usage() -> str:
    lines = ["usage: emojax <command> [flags]   (emojax <command> --help for its flags)", ""]
    lines += [f"  {name:<9} {doc}" for name, (_, doc) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in SUBCOMMANDS:
        print(f"emojax: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(SUBCOMMANDS[command][0])
    # absl apps take argv[0] as the program name; keep the command in it for --help text.
    module.main(command, [f"emojax {command}"] + argv[2:])


if __name__ == "__main__":
    run()
