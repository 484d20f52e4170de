"""End to end on a tiny config: train -> test-split report with PNGs -> invert -> adjust.

The frozen MiniLM features of the 6,468-word vocabulary are replaced by fixed random features
(computing them takes half a minute and is covered by the nn/convert parity tests); everything
else -- dataset builder, trainer, checkpoints, evaluation, plots, CLI functions -- is the real path.
"""

import json
import os

import numpy as np
import pytest

from emojax.models.emosense.method import EmoSense
from emojax.models.emosense.model import TEXT_DIM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    from test_emosense_model import tiny_config

    from emojax.quickstart import write_report
    from emojax.train import evaluate, train

    def fake_table(self):
        rng = np.random.default_rng(0)
        table = rng.normal(size=(len(self.vocabulary), TEXT_DIM)).astype(np.float32)
        return table / np.linalg.norm(table, axis=1, keepdims=True)

    patch = pytest.MonkeyPatch()
    patch.setattr(EmoSense, "identifier_table", fake_table)
    root = tmp_path_factory.mktemp("emosense_e2e")
    config = tiny_config()
    d = config.data
    d.data_dir = str(root / "tfds")
    d.num_train, d.num_validation, d.num_test = 128, 64, 64
    d.global_batch_size = 32
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.save_every = 4, 2, 4, 4
    config.eval.num_batches = 1  # validation during training: one batch
    workdir = str(root / "run")
    EmoSense(config).prepare_data()
    train(config, workdir)
    test = config.copy_and_resolve_references()
    test.eval.split, test.eval.num_batches = "test", 0
    metrics = {k.removeprefix("eval/"): v for k, v in evaluate(test, workdir).items()}
    write_report(config, workdir, metrics)
    with open(os.path.join(workdir, "report", "report.json")) as f:
        yield workdir, json.load(f)
    patch.undo()


def test_quickstart_outputs(trained_workdir):
    workdir, metrics = trained_workdir
    for name in (
        "metrics.jsonl",
        "config.json",
        "report/report.md",
        "report/report.json",
        "report/training_curves.png",
        "report/confusion_matrix.png",
        "report/embedding_map.png",
    ):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert os.listdir(os.path.join(workdir, "checkpoints"))
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert metrics["num_examples"] == 64
    for key in ("senses_emotion_r1", "senses_emotion_r5", "head_r1", "macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["senses_emotion_r1"] <= metrics["senses_emotion_r5"]
    for rule in ("support", "threshold"):  # both decision rules, whatever the head
        assert 0.0 <= metrics[f"macro_f1_{rule}"] <= 1.0
        assert 0.0 <= metrics[f"mean_set_size_{rule}"] <= 8.0
    assert metrics["macro_f1"] == metrics["macro_f1_support"]  # entmax: the support
    assert metrics["mean_set_size_threshold"] <= metrics["mean_set_size_support"]
    assert np.isfinite(metrics["loss_emotion_fy"])
    for key in ("zero_shot_sight_exact@5", "sense_weight_taste"):  # the QUICKSTART_REPORT hook
        assert key in metrics, key
    assert 1.0 < metrics["head_alpha"] < 2.0 and 1.0 < metrics["view_alpha"] < 2.0
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert any("eval/head_r1" in r for r in rows) and any("loss_emotion_fy" in r for r in rows)
    evals = [r for r in rows if "eval/head_r1" in r]
    assert evals[-1]["eval/num_examples"] == 32  # eval.num_batches=1 caps validation


def test_invert_and_adjust_on_the_trained_workdir(trained_workdir, tmp_path):
    from emojax.models.emosense.cli import run_adjust, run_invert

    workdir, _ = trained_workdir
    result = run_invert(workdir, "joy", steps=20, top_k=2)
    assert set(result["weights"]) == {"sight", "sound", "touch", "smell", "taste"}
    assert result["predicted"][4] >= max(result["predicted"])  # joy ranks first
    assert os.path.exists(os.path.join(workdir, "invert_joy.json"))

    person = tmp_path / "me.jsonl"
    scene = ["storm", "scream", "cold", "rot", "sour"]
    person.write_text(json.dumps({"words": scene, "emotion": "joy"}) + "\n")
    out = run_adjust(workdir, str(person), scene, k=1, blend=0.5)
    np.testing.assert_allclose(
        out["adjusted"], 0.5 * np.asarray(out["model"]) + 0.5 * np.eye(8)[4], atol=1e-5
    )
    with pytest.raises(ValueError, match="not in the identifier vocabulary"):
        run_adjust(
            workdir, str(person), ["storm", "scream", "cold", "rot", "xyzzy"], k=1, blend=0.5
        )
