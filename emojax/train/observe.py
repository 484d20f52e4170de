"""Observability: metrics.jsonl + TensorBoard (tensorboardX), the progress line, MFU.

Only process 0 writes; the workdir may be a URL (see :class:`MetricsWriter`). MFU (model FLOPs
utilisation) is estimated as::

    MFU = flops_per_step * steps_per_second / (num_devices * peak_flops_per_device)

``flops_per_step`` is XLA's ``cost_analysis()`` of the *lowered* (global, not yet partitioned)
step: forward + backward + optimizer update, so slightly more than "model" FLOPs, and free of
the work that partitioning replicates on every device; the peak is the chip's dense bf16 rate
from :data:`PEAK_FLOPS` (None on CPU or unknown chips, then MFU is not reported).
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import time

import jax

from emojax.train.workdir import as_path, is_local, upload_files

# device_kind substring -> dense bf16 peak FLOP/s per device (vendor data sheets).
PEAK_FLOPS = {
    "TPU v6": 918e12,
    "TPU v5p": 459e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v4": 275e12,
    "TPU v3": 123e12,
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10G": 125e12,
}


def peak_flops(device: jax.Device) -> float | None:
    kind = getattr(device, "device_kind", "")
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops
    return None


def compiled_flops(compiled) -> float | None:
    """FLOPs of one call of a lowered (global) or compiled (per-device) program, from XLA's
    cost analysis; None where the backend gives none."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


class MetricsWriter:
    """``{"step": s, ...}`` lines in WORKDIR/metrics.jsonl and TensorBoard scalars.

    A local workdir gets each line appended and TensorBoard events written in place. A URL
    workdir (object stores have no append) keeps the lines in memory and rewrites the whole
    ``metrics.jsonl`` at each :meth:`write`; its TensorBoard events are written to a local
    temporary folder and uploaded to WORKDIR/tensorboard at most every ``upload_every_s``
    seconds and at :meth:`flush` / :meth:`close` (tensorboardX writing to ``gs://`` itself
    re-uploads the file at every flush and can hang at exit).
    """

    def __init__(self, workdir, enabled: bool = True, upload_every_s: float = 60.0):
        self.enabled = enabled
        workdir = as_path(workdir)
        self.path = workdir / "metrics.jsonl"
        self._remote = not is_local(workdir)
        self._lines: list[str] | None = None  # URL workdir: every line of the file
        self._tb = None
        self._tb_local = None
        self._tb_target = workdir / "tensorboard"
        self._uploaded: dict = {}
        self._upload_every_s = upload_every_s
        self._last_upload = time.monotonic()
        if enabled:
            from tensorboardX import SummaryWriter  # no TensorFlow needed

            if self._remote:
                self._tb_local = tempfile.mkdtemp(prefix="emojax-tensorboard-")
                self._tb = SummaryWriter(self._tb_local)
            else:
                self._tb = SummaryWriter(str(self._tb_target))

    def _read_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run re-logs them)."""
        if not self.enabled:
            return
        lines = self._read_lines()
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        if self._remote:
            self._lines = kept
        if kept != lines:
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        # wall_time (unix seconds) only in the JSON lines
        line = json.dumps({"step": int(step), **scalars, "wall_time": time.time()})
        if self._remote:
            if self._lines is None:
                self._lines = self._read_lines()
            self._lines.append(line)
            self.path.write_text("".join(x + "\n" for x in self._lines))
        else:
            with self.path.open("a") as f:
                f.write(line + "\n")
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, int(step))
        if self._tb_local and time.monotonic() - self._last_upload >= self._upload_every_s:
            self._upload_tensorboard()

    def _upload_tensorboard(self) -> None:
        self._tb.flush()
        upload_files(self._tb_local, self._tb_target, self._uploaded)
        self._last_upload = time.monotonic()

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            if self._tb_local:
                self._upload_tensorboard()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            if self._tb_local:
                upload_files(self._tb_local, self._tb_target, self._uploaded)
                shutil.rmtree(self._tb_local, ignore_errors=True)
            self._tb = self._tb_local = None


class Progress:
    """Rates and ETA between calls; ``line()`` gives the human-readable progress line."""

    def __init__(self, start_step: int, num_steps: int, global_batch_size: int):
        self.num_steps, self.batch = num_steps, global_batch_size
        self._step, self._time = start_step, time.perf_counter()

    def update(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self._time, 1e-9)
        steps_per_s = (step - self._step) / elapsed
        self._step, self._time = step, now
        return {"steps_per_s": steps_per_s, "examples_per_s": steps_per_s * self.batch}

    def line(self, step: int, loss: float, rates: dict[str, float], mfu: float | None) -> str:
        eta_s = (self.num_steps - step) / rates["steps_per_s"] if rates["steps_per_s"] else 0.0
        eta = datetime.timedelta(seconds=round(eta_s))
        parts = [
            f"step {step}/{self.num_steps}",
            f"loss {loss:.5g}",
            f"{rates['steps_per_s']:.2f} steps/s",
            f"{rates['examples_per_s']:.0f} examples/s",
            f"ETA {eta}",
        ]
        if mfu is not None:
            parts.append(f"MFU {100 * mfu:.1f}%")
        return " | ".join(parts)
