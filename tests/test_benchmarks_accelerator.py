"""benchmarks/accelerator.py --quick runs end to end (a CPU smoke test) and writes its JSON."""

import json
import math

import pytest

from benchmarks import accelerator


@pytest.mark.slow  # compiles a small MAE step: ~30 s of CPU
def test_accelerator_benchmark_quick(tmp_path, capsys):
    path = tmp_path / "accelerator.json"
    returned = accelerator.main(["--quick", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned))
    assert {"benchmark", "machine", "device_kind", "platform", "quick", "mae", "attention",
            "entmax"} <= set(data)  # fmt: skip
    assert data["quick"] is True

    mae = data["mae"]
    for key in ("ms", "flops_per_step", "mfu", "peak_tflops", "tflops_per_s", "loss", "batch"):
        assert key in mae
    assert mae["ms"] > 0 and mae["finite"] and math.isfinite(mae["loss"])
    assert mae["visible_patches"] * 4 == mae["num_patches"]  # 75 % masked
    if data["platform"] == "cpu":
        assert mae["mfu"] is None and "MFU n/a" in out
    else:
        assert 0 < mae["mfu"] < 1

    impls = {row["impl"]: row for row in data["attention"]}
    assert {"auto", "xla", "naive einsum-softmax"} <= set(impls)
    naive = impls["naive einsum-softmax"]
    assert naive["length"] == 256 and naive["lxl_bytes"] == 12 * 256 * 256 * 4
    for row in (impls["xla"], naive):
        assert row["ms"] > 0 and "keeps_lxl_residual" in row and "temp_bytes" in row
    if naive["temp_bytes"] is not None:  # the materialised softmax keeps its L x L weights
        assert naive["keeps_lxl_residual"] is True

    names = [row["name"] for row in data["entmax"]]
    assert names[0].startswith("read+write pass") and len(names) == 3
    assert all(row["x_read_write_pass"] > 0 for row in data["entmax"][1:])
    assert "one read+write pass" in out
