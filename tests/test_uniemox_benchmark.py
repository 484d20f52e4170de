"""benchmarks/uniemox.py --quick: one UniEmoX pretraining step (two views, guidance, AdamW) in
emojax and in PyTorch (Hugging Face ViTMAE + CLIP) from the same weights gives the same losses
on the first two steps; the JSON is written."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks import uniemox  # noqa: E402


@pytest.mark.slow
def test_uniemox_benchmark_quick_matches_pytorch(tmp_path, capsys):
    path = tmp_path / "uniemox.json"
    returned = uniemox.main(["--quick", "--json", str(path)])
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned)) and data["quick"] is True
    step = data["sections"]["train_step"]
    (row,) = step["rows"]
    for key in ("emojax_ms", "peer_ms", "ratio"):
        assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    losses, parts = step["losses"], step["parts"]
    np.testing.assert_allclose(losses["emojax"], losses["torch"], rtol=1e-4)
    for name in ("mae", "image", "prompt"):
        np.testing.assert_allclose(parts["emojax"][name], parts["torch"][name], rtol=1e-4)
    assert "UniEmoX pretrain step b=4" in capsys.readouterr().out
