"""The method-agnostic trainer: ``train``, ``evaluate`` and ``restore`` (config, workdir)."""

from emojax.train.checkpoint import Checkpointer, CorruptCheckpointWarning
from emojax.train.config import (
    ConfigError,
    apply_overrides,
    engine_defaults,
    load_config,
    validate_config,
)
from emojax.train.loop import (
    NonFiniteLossError,
    PreemptedError,
    Restored,
    WorkdirError,
    evaluate,
    evaluate_split,
    restore,
    train,
    train_to_end,
)
from emojax.train.optim import learning_rate_schedule, make_optimizer, weight_decay_mask
from emojax.train.state import TrainState, sharded_init

__all__ = [
    "Checkpointer",
    "ConfigError",
    "apply_overrides",
    "CorruptCheckpointWarning",
    "NonFiniteLossError",
    "PreemptedError",
    "Restored",
    "TrainState",
    "WorkdirError",
    "engine_defaults",
    "evaluate",
    "evaluate_split",
    "learning_rate_schedule",
    "load_config",
    "make_optimizer",
    "restore",
    "sharded_init",
    "train",
    "train_to_end",
    "validate_config",
    "weight_decay_mask",
]
