"""``emojax quickstart`` for multi-stage methods: stages run in order, each in its own workdir,
linked through ``config.stages_root`` (a FieldReference that ``init_from.path`` derives from)."""

import json
import os

import pytest
from absl import flags

from emojax import quickstart

SMOKE = os.path.join(os.path.dirname(quickstart.__file__), "configs", "smoke.py")

STAGE_CONFIG = """
import importlib.util
import ml_collections

def get_config():
    spec = importlib.util.spec_from_file_location("smoke_base", {smoke!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    root = ml_collections.FieldReference("workdirs/two_stage")
    config.stages_root = root
    config.train.num_steps = 3
    config.train.log_every = 1
    config.data.num_train = 256
    config.data.num_eval = 64
    {extra}
    return config
"""


@pytest.fixture()
def two_stages(tmp_path, monkeypatch):
    paths = []
    for name, extra in (
        ("teacher", "pass"),
        ("student", "config.init_from = ml_collections.ConfigDict(dict(path=root + '/teacher'))"),
    ):
        path = tmp_path / f"{name}.py"
        path.write_text(STAGE_CONFIG.format(smoke=SMOKE, extra=extra))
        paths.append((name, str(path)))
    monkeypatch.setattr(quickstart, "stage_configs", lambda method, config_path=None: paths)
    yield tmp_path
    flags.FLAGS.unparse_flags()


def _run(argv: list[str]) -> None:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["quickstart", *argv])
    quickstart._main(["quickstart", "smoke"])


def test_stages_run_in_order_and_link_through_stages_root(two_stages, capsys):
    root = two_stages / "run"
    _run([f"--workdir={root}", "--set=optimizer.learning_rate=0.002"])
    out = capsys.readouterr().out
    assert out.index("stage 1/2: teacher") < out.index("stage 2/2: student")
    for stage in ("teacher", "student"):
        saved = json.loads((root / stage / "config.json").read_text())
        assert saved["stages_root"] == str(root)
        assert saved["optimizer"]["learning_rate"] == 0.002
        assert (root / stage / "report" / "report.json").is_file()
    student = json.loads((root / "student" / "config.json").read_text())
    assert student["init_from"]["path"] == str(root / "teacher")
    assert "test metrics of stage student" in out


def test_a_preempted_stage_stops_the_chain(two_stages, monkeypatch, capsys):
    from emojax.train import loop

    monkeypatch.setattr(loop, "train", lambda config, workdir: {"preempted": True, "step": 2})
    with pytest.raises(SystemExit, match="preempted .* at step 2"):
        _run([f"--workdir={two_stages / 'run'}"])
    out = capsys.readouterr().out
    assert "stage 1/2: teacher" in out and "stage 2/2" not in out
    assert "evaluating" not in out


def test_stages_flag_and_unknown_keys(two_stages):
    with pytest.raises(Exception, match="not among"):
        _run([f"--workdir={two_stages / 'x'}", "--stages=nope"])
    with pytest.raises(Exception, match="no stage of smoke has that config key"):
        _run([f"--workdir={two_stages / 'x'}", "--set=model.no_such_key=1"])


def test_declared_stages_of_single_config_methods_are_empty():
    assert quickstart.declared_stages("emosense") == ()
    assert quickstart.stage_configs("smoke")[0][0] == ""


def test_set_values_are_literals_and_unknown_keys_fail():
    from emojax.train.config import ConfigError, load_config, parse_overrides

    assert parse_overrides(["a.b=3", "c='x'", "d=plain", "e=(1, 2)"]) == {
        "a.b": 3, "c": "x", "d": "plain", "e": (1, 2)
    }  # fmt: skip
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.num_steps"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(SMOKE, parse_overrides(["model.no_such_key=1"]))
