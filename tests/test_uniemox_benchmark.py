"""benchmarks/uniemox.py --quick: one UniEmoX pretraining step (two views, guidance, AdamW) in
emojax and in PyTorch (Hugging Face ViTMAE + CLIP) from the same weights gives the same losses
on the first two steps; the JSON is written; the bf16 MFU section runs at toy size."""

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
    mfu = data["sections"]["bf16_mfu"]  # the GPU MFU path at toy size: runs, no peak on CPU
    assert mfu["finite"] and mfu["flops_per_step"] > 0 and mfu["ms"] > 0
    assert mfu["mfu"] is None and mfu["peak_tflops"] is None
    out = capsys.readouterr().out
    assert "UniEmoX pretrain step b=4" in out and "UniEmoX pretrain step bf16 b=8" in out


def test_uniemox_mfu_is_skipped_at_full_size_on_cpu():
    assert "no accelerator" in uniemox.mfu_section(quick=False)["skipped"]
