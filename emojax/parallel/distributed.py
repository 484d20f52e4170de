"""Multi-host start-up: ``jax.distributed.initialize`` from flags, env, SLURM or a TPU pod.

Call :func:`initialize_distributed` before anything touches a JAX backend. Resolution order:
explicit arguments, then ``EMOJAX_COORDINATOR_ADDRESS`` / ``EMOJAX_NUM_PROCESSES`` /
``EMOJAX_PROCESS_ID`` (set by ``launch/local.sh``), then JAX's own cluster detection on SLURM
(``SLURM_NTASKS`` > 1) and Cloud TPU pods (``TPU_WORKER_HOSTNAMES`` / ``MEGASCALE_*``, or
``EMOJAX_DISTRIBUTED=auto``, which ``launch/tpu_pod.sh`` sets).
A single process with none of these does nothing.
"""

from __future__ import annotations

import os

import jax
from absl import logging

ENV_COORDINATOR = "EMOJAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "EMOJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "EMOJAX_PROCESS_ID"
ENV_DISTRIBUTED = "EMOJAX_DISTRIBUTED"  # "auto": always let JAX detect the cluster


def _cluster_detected() -> str | None:
    if os.environ.get(ENV_DISTRIBUTED) == "auto":  # launch/tpu_pod.sh sets it
        return "auto"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
        return "slurm"
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if "," in hosts or "MEGASCALE_COORDINATOR_ADDRESS" in os.environ:
        return "tpu_pod"
    return None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from err


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> str:
    """Start multi-process JAX if this job has several processes; returns how ('none', ...)."""
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise ValueError(
                "multi-process needs all of coordinator address, number of processes and process "
                f"id (flags or {ENV_COORDINATOR}/{ENV_NUM_PROCESSES}/{ENV_PROCESS_ID}); got "
                f"address={coordinator_address!r}, num_processes={num_processes}, "
                f"process_id={process_id}"
            )
        if num_processes == 1:
            return "none"
        # CPU devices (tests, launch/local.sh) need a cross-process collective backend;
        # the setting only affects the CPU backend.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        how = "explicit"
    else:
        how = _cluster_detected()
        if how is None:
            return "none"
        jax.distributed.initialize()  # JAX detects SLURM / Cloud TPU settings itself.
    logging.info(
        "jax.distributed initialised (%s): process %d of %d, %d local / %d global devices",
        how,
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return how
