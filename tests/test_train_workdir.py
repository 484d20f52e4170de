"""emojax.train.workdir: URLs stay URLs, local paths become absolute."""

import json
import os
import subprocess
import sys

import pytest
from etils import epath

from emojax.train.workdir import as_path, is_local, move_tree


def test_urls_are_kept_local_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = as_path("gs://bucket/run")
    assert os.fspath(url) == "gs://bucket/run" and not is_local(url)
    assert os.fspath(url / "checkpoints") == "gs://bucket/run/checkpoints"
    assert as_path(url) is url
    assert not (tmp_path / "gs:").exists()
    local = as_path("runs/a")
    assert is_local(local) and os.fspath(local) == os.fspath(tmp_path / "runs" / "a")
    assert isinstance(local, epath.Path)


def test_move_tree_locally(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    move_tree(as_path(tmp_path / "a"), as_path(tmp_path / "moved" / "1"))
    assert (tmp_path / "moved" / "1" / "b" / "f").read_text() == "x"
    assert not (tmp_path / "a").exists()


GS_SCRIPT = r"""
import json, sys
from emojax.train.checkpoint import checkpoint_steps
from emojax.train.observe import MetricsWriter
from emojax.train.workdir import as_path, move_tree

w = as_path(sys.argv[1])
for i in range(3):
    (w / "checkpoints" / "5" / "state" / f"f{i}").write_text("x")
(w / "checkpoints" / "5" / "commit_success.txt").write_text("ok")
(w / "checkpoints" / "7" / "state" / "f").write_text("x")  # a save cut short: no commit file
out = {"steps": checkpoint_steps(w / "checkpoints")}
move_tree(w / "checkpoints" / "5", w / "checkpoints_corrupt" / "5-1")
out["moved"] = sorted(p.name for p in (w / "checkpoints_corrupt" / "5-1" / "state").iterdir())
out["source_left"] = (w / "checkpoints" / "5").exists()
m = MetricsWriter(w)
m.truncate_after(0)
m.write(1, {"loss": 1.0})
m.write(2, {"loss": 0.5})
m.close()
m = MetricsWriter(w)
m.truncate_after(1)  # a resume from step 1 drops step 2, then logs it again
m.write(2, {"loss": 0.25})
m.close()
out["metrics"] = [json.loads(x) for x in (w / "metrics.jsonl").read_text().splitlines()]
out["tensorboard"] = [p.name for p in (w / "tensorboard").iterdir()]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_gs_checkpoint_steps_set_aside_and_metrics(gcs_emulator, tmp_path):
    """On a GCS emulator: unfinished steps are skipped, a step folder moves by copy + delete,
    metrics.jsonl is rewritten whole (no append on GCS) and TensorBoard events are uploaded."""
    gcs_emulator.make_bucket("workdir-unit")
    run = subprocess.run(
        [sys.executable, "-c", GS_SCRIPT, "gs://workdir-unit/run"],
        env={**os.environ, **gcs_emulator.env, "JAX_PLATFORMS": "cpu"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["steps"] == [5]
    assert out["moved"] == ["f0", "f1", "f2"] and not out["source_left"]
    assert [(r["step"], r["loss"]) for r in out["metrics"]] == [(1, 1.0), (2, 0.25)]
    assert out["tensorboard"] and all(
        n.startswith("events.out.tfevents") for n in out["tensorboard"]
    )
    assert not list(tmp_path.iterdir())  # no local `gs:` folder
