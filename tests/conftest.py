"""Shared test set-up: 8 fake CPU devices for sharding tests, float64 available."""

import os

os.environ.setdefault("XLA_FLAGS", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402

# Every test process sees 8 CPU devices; unsharded code runs on device 0 as usual.
jax.config.update("jax_num_cpu_devices", 8)
# float64 is opt-in per test via jax.experimental.enable_x64 where parity needs it.


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gcs_emulator():
    """A local GCS emulator on 127.0.0.1 (tests/gcs_emulator.py), one for the session."""
    from gcs_emulator import GcsEmulator

    emulator = GcsEmulator()
    try:
        yield emulator
    finally:
        emulator.stop()
