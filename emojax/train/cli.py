"""``emojax train`` and ``emojax eval``: absl flags + an ml_collections config file.

    emojax train --config=configs/smoke.py --workdir=DIR [--config.a.b=value ...]
    emojax eval  --config=configs/smoke.py --workdir=DIR [--config.eval.split=test]

Re-running ``train`` with the same workdir resumes from the newest checkpoint. Multi-process
runs take ``--coordinator_address/--num_processes/--process_id`` (or the ``EMOJAX_*``
environment variables set by ``launch/local.sh``); SLURM and TPU pods are detected.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Python config file with get_config(), e.g. configs/smoke.py.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints/, metrics.jsonl, ...")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-process runs only)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the job.")
_RETAIN_HOST_MEMORY = flags.DEFINE_bool(
    "retain_host_memory",
    False,
    "Keep freed host memory for reuse (glibc): XLA:CPU then stops page-faulting its per-step "
    "buffers in again (emojax.parallel.retain_freed_host_memory). RSS no longer shrinks.",
)
_SINGLE_MALLOC_ARENA = flags.DEFINE_bool(
    "single_malloc_arena",
    False,
    "With --retain_host_memory, also keep worker threads' blocks above 64 MiB (one malloc arena "
    "for all threads): for steps with large temporaries; slows small, pipeline-bound models.",
)
_QUIET_LIBRARIES = flags.DEFINE_bool(
    "quiet_libraries", True, "Hide INFO logs of Orbax/absl (keep the progress line)."
)


def _fail(command: str, err: Exception) -> None:
    print(f"emojax {command}: error: {err}", file=sys.stderr)
    sys.exit(1)


def _check_config_loaded(command: str) -> None:
    """config_flags turns an unreadable config file into a placeholder object: name the file."""
    import os

    import ml_collections

    if isinstance(_CONFIG.value, ml_collections.ConfigDict):
        return
    filename = config_flags.get_config_filename(flags.FLAGS["config"])
    path = filename.split(":", 1)[0]
    if not os.path.isfile(path):
        _fail(command, FileNotFoundError(f"config file {os.path.abspath(path)} does not exist"))
    _fail(command, ValueError(f"config file {path} did not give a ConfigDict from get_config()"))


def _run(command: str) -> None:
    # Imported here so `--help` does not initialise JAX.
    from emojax.parallel import initialize_distributed, retain_freed_host_memory
    from emojax.train.checkpoint import CorruptCheckpointWarning  # noqa: F401
    from emojax.train.config import ConfigError
    from emojax.train.loop import NonFiniteLossError, WorkdirError, evaluate, train

    if _CONFIG.value is None or _WORKDIR.value is None:
        _fail(command, ValueError("--config and --workdir are required (see --help)"))
    _check_config_loaded(command)
    if not flags.FLAGS["verbosity"].present:  # an explicit --verbosity wins
        logging.set_verbosity(logging.WARNING if _QUIET_LIBRARIES.value else logging.INFO)
    if _RETAIN_HOST_MEMORY.value:  # before any JAX backend starts (its threads' malloc arenas)
        retain_freed_host_memory(single_arena=_SINGLE_MALLOC_ARENA.value)
    initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        if command == "train":
            result = train(_CONFIG.value, _WORKDIR.value)
        else:
            result = evaluate(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, WorkdirError, NonFiniteLossError, FileNotFoundError) as err:
        _fail(command, err)
    import jax

    if jax.process_index() == 0:
        print(json.dumps(result, sort_keys=True), flush=True)


def main(command: str, argv: list[str]) -> None:
    """Entry point used by ``emojax.cli``: ``argv[0]`` is the program name."""
    if command not in ("train", "eval"):
        raise ValueError(f"emojax.train.cli handles train and eval, not {command!r}")

    if any(arg in ("-h", "--help", "--helpshort") for arg in argv[1:]):
        print(__doc__)
        print(flags.FLAGS.module_help(__name__))
        print(
            "\n  --config.<key>=<value>: override any config field, "
            "e.g. --config.train.num_steps=10"
        )
        sys.exit(0)

    def app_main(unused_argv):
        if len(unused_argv) > 1:
            _fail(command, ValueError(f"unexpected arguments {unused_argv[1:]}"))
        _run(command)

    def parse_flags(args: list[str]) -> list[str]:
        try:
            return flags.FLAGS(args)
        except (AttributeError, KeyError) as err:  # an override naming a key the config lacks
            message = str(err).strip("'\"").replace("\\n", " ").replace("\\'", "'")
            _fail(command, ValueError(f"bad --config override: {message}"))
        except flags.Error as err:
            _fail(command, ValueError(f"{err} (see --help)"))

    app.run(app_main, argv=argv, flags_parser=parse_flags)
