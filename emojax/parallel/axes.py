"""Logical axis names and the one table that maps them to mesh axes.

Every Flax module in ``emojax.nn`` annotates its parameters and activations with the
logical names below (``nn.with_logical_partitioning`` / ``nn.with_logical_constraint``);
the trainer turns them into ``NamedSharding`` s with :data:`LOGICAL_AXIS_RULES`.

Mesh axes: ``data`` (pure data parallel), ``fsdp`` (data parallel + parameter sharding),
``tensor`` (model parallel inside a layer).
"""

MESH_AXES = ("data", "fsdp", "tensor")

# logical name -> mesh axis (or tuple of mesh axes, or None = replicated).
LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),  # the large weight dimension FSDP shards
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("joined_kv", "tensor"),
    ("vocab", "tensor"),
    ("classes", None),
    ("length", None),
    ("patch", None),
    ("channels", None),
    ("conv_in", None),
    ("conv_out", "tensor"),
    ("nodes", None),
    ("relations", None),
    ("senses", None),
    ("norm", None),
    ("queue", ("data", "fsdp")),  # rows of a feature queue kept outside the gradient
    ("clusters", None),
)

LOGICAL_AXIS_NAMES = tuple(name for name, _ in LOGICAL_AXIS_RULES)
