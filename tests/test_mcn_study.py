"""benchmarks.mcn_study: the baseline rows and the table (the training rows reuse the trainer)."""

import numpy as np

from benchmarks import mcn_study


def _clips(rng, n, mixing):
    text = rng.standard_normal((n, 5, 8)).astype(np.float32)
    video = text.reshape(n, -1) @ mixing + 0.1 * rng.standard_normal((n, 6))
    audio = rng.standard_normal((n, 12, 4)).astype(np.float32)
    return {"text": text, "video": video.astype(np.float32), "audio": audio}


def test_ridge_probe_reads_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((40, 6))
    train, test = _clips(rng, 400, mixing), _clips(rng, 100, mixing)
    linked = mcn_study.ridge_probe(train, test, ridge=1.0)
    assert linked["t2va_R@10"] > 0.5 and linked["t2va_median_rank"] < 10
    shuffled = dict(test, video=test["video"][rng.permutation(100)])
    unlinked = mcn_study.ridge_probe(train, shuffled, ridge=1.0)
    assert unlinked["t2va_median_rank"] > 25


def test_chance_and_markdown():
    assert mcn_study.chance(2000) == {
        "t2va_R@1": 0.0005,
        "t2va_R@5": 0.0025,
        "t2va_R@10": 0.005,
        "t2va_median_rank": 1000.5,
    }
    rows = {"MCN default": [mcn_study.chance(10), mcn_study.chance(20)]}
    summary = mcn_study.summarise(rows)
    assert summary["MCN default"]["t2va_median_rank"] == (8.0, 2.5)
    table = mcn_study.markdown(summary, {"MCN default": 2}, 2000)
    assert "| MCN default | 2 | 0.0750 ± 0.0250 |" in table and "8.0 ± 2.5 |" in table


def test_configs_of_the_study_load_with_a_seed():
    for name in mcn_study.STUDY:
        config = mcn_study.load_study_config(name, 2, 7, ["model.margin=0.01"])
        assert config.seed == 2 and config.train.num_steps == 7 and config.model.margin == 0.01
