"""benchmarks/mcn.py --quick runs end to end and writes its JSON (k-means vs faiss, sklearn)."""

import json
import math

import pytest

pytest.importorskip("faiss")
pytest.importorskip("sklearn")

from benchmarks import mcn  # noqa: E402


def test_mcn_benchmark_quick(tmp_path, capsys):
    path = tmp_path / "mcn.json"
    returned = mcn.main(["--quick", "--json", str(path)])
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(returned))
    assert {"benchmark", "machine", "quick", "sections"} <= set(data) and data["quick"] is True
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
