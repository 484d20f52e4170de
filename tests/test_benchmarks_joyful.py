"""benchmarks/joyful.py --quick runs end to end: one Joyful training step in emojax and in
PyTorch + torch_geometric from the same weights (the deterministic loss terms agree)."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from benchmarks import joyful  # noqa: E402


def test_joyful_benchmark_quick(tmp_path, capsys):
    path = tmp_path / "joyful.json"
    returned = joyful.main(["--quick", "--json", str(path)])
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned)) and data["quick"] is True
    section = data["sections"]["train_step"]
    (row,) = section["rows"]
    for key in ("emojax_ms", "peer_ms", "ratio"):
        assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    parts = section["parts"]
    for term in ("ce", "fusion"):
        np.testing.assert_allclose(parts["emojax"][term], parts["torch"][term], rtol=1e-4)
    assert "Joyful train step, 4 dialogues" in capsys.readouterr().out
