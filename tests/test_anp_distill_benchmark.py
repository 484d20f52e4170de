"""benchmarks/anp_distill.py --quick runs end to end: the student's training step equals PyTorch
eager's (same converted weights, two steps of the seed's loss + Adam), and the batched saliency
equals the NumPy reference."""

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks import anp_distill  # noqa: E402


@pytest.mark.slow  # two compiles (ResNet step, saliency): ~15 s on a quiet 2-core machine
def test_anp_distill_benchmark_quick(tmp_path):
    path = tmp_path / "anp.json"
    returned = anp_distill.main(["--quick", "--json", str(path)])
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned)) and data["quick"] is True
    step = data["sections"]["train_step"]
    assert step["losses"]["emojax"] == pytest.approx(step["losses"]["torch"], rel=1e-4)
    assert data["sections"]["saliency"]["max_abs_diff"] < 1e-4
    for section in data["sections"].values():
        (row,) = section["rows"]
        assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("emojax_ms", "peer_ms", "ratio"))
