"""CLI config for the toy methods: ``--config=tests/toy_config.py:QueueRegression``."""

from toy_methods import base_config


def get_config(name: str = "QueueRegression"):
    config = base_config(f"toy_methods:{name}")
    config.mesh = {"data": 8}
    return config
