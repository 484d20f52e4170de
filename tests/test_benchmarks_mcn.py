"""benchmarks/mcn.py --quick runs end to end and writes its JSON: (a) one MCN training step vs
PyTorch eager (the same losses on the same weights), (b) k-means vs faiss, sklearn."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("sklearn")
pytest.importorskip("torch")
pytest.importorskip("optax")

from benchmarks import mcn  # noqa: E402


def test_mcn_benchmark_quick(tmp_path, capsys):
    path = tmp_path / "mcn.json"
    returned = mcn.main(["--quick", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned))
    assert {"benchmark", "machine", "quick", "sections"} <= set(data) and data["quick"] is True
    assert list(data["sections"]) == ["train_step", "kmeans"]
    step = data["sections"]["train_step"]
    assert step["shape"]["batch"] == 64 and step["shape"]["kmeans_iters"] == 5
    (row,) = step["rows"]
    for key in ("emojax_ms", "peer_ms", "ratio"):
        assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    # same weights, inputs, centroids and queue: the same loss on step 1 and, after one Adam
    # update, one k-means refit and a queue push, on step 2; and the same parts on step 1
    losses, parts = step["losses"], step["parts"]
    assert len(losses["emojax"]) == len(losses["torch"]) == 2
    np.testing.assert_allclose(losses["emojax"], losses["torch"], rtol=1e-4)
    assert losses["emojax"][1] < losses["emojax"][0]
    for name in ("mms", "cluster", "recon"):
        np.testing.assert_allclose(parts["emojax"][name], parts["torch"][name], rtol=1e-4)
    assert "MCN train step b=64" in out and "sizes: batch 64" in out
    kmeans = data["sections"]["kmeans"]
    assert kmeans["shape"] == {"rows": 4096, "dim": 128, "clusters": 32, "iterations": 20}
    assert set(kmeans["inertia"]) == {"emojax", "faiss", "sklearn", "init"}
    rows = kmeans["rows"]
    assert [r["name"].rsplit(": ", 1)[1] for r in rows] == ["faiss", "sklearn"]
    for row in rows:
        for key in ("emojax_ms", "peer_ms", "ratio", "inertia_emojax", "inertia_peer"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    inertia = kmeans["inertia"]
    # the same Lloyd iterations from the same seeds: every result far below the seeds' inertia,
    # and emojax (cosine, unnormalised means) within 1 % of faiss (spherical)
    assert all(inertia[n] < 0.9 * inertia["init"] for n in ("emojax", "faiss", "sklearn"))
    assert abs(inertia["emojax"] - inertia["faiss"]) <= 0.01 * inertia["faiss"]
    assert "k-means refit 4096x128 K=32 20 it: faiss" in out and "cosine inertia" in out
