"""The ``emojax`` command: ``emojax train | eval | convert | quickstart | <method commands>``.

Each subcommand lives in its own module exposing ``main(command, argv)`` (``argv[0]`` is the
program name) and is imported only when used, so ``emojax --help`` is fast and a subcommand's
dependencies do not load for the others. Method packages add their own commands (their
``COMMANDS``, see ``emojax.models``); this module names no method.
"""

from __future__ import annotations

import importlib
import sys

# the built-in commands: command -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("emojax.train.cli", "train a method from a config"),
    "eval": ("emojax.train.cli", "evaluate a checkpoint of a workdir"),
    "convert": ("emojax.convert.cli", "convert PyTorch weights to Flax params"),
    "quickstart": ("emojax.quickstart", "train a method's default config on its built-in data"),
}


def commands() -> dict[str, tuple[str, str]]:
    """The built-in commands followed by those of the method packages (command -> (module,
    help)); a method command named like a built-in one is an error."""
    from emojax.models import method_commands

    merged = dict(SUBCOMMANDS)
    for name, (module, doc) in method_commands().items():
        if name in SUBCOMMANDS:
            raise ValueError(
                f"method command {name!r} (module {module}) clashes with the built-in command "
                f"{name!r} ({SUBCOMMANDS[name][0]}); rename it in its package's COMMANDS"
            )
        merged[name] = (module, doc)
    return merged


def usage(table: dict[str, tuple[str, str]] | None = None) -> str:
    table = commands() if table is None else table
    width = max(9, *(len(name) for name in table))
    lines = ["usage: emojax <command> [flags]   (emojax <command> --help for its flags)", ""]
    lines += [f"  {name:<{width}} {doc}" for name, (_, doc) in table.items()]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    table = commands()
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage(table))
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in table:
        print(f"emojax: unknown command {command!r}\n\n{usage(table)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(table[command][0])
    # absl apps take argv[0] as the program name; keep the command in it for --help text.
    module.main(command, [f"emojax {command}"] + argv[2:])


if __name__ == "__main__":
    run()
