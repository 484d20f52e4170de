"""``emojax convert`` end to end: a saved transformers checkpoint -> Flax safetensors."""

import numpy as np
import pytest
import torch
import transformers

from emojax.cli import run
from emojax.convert import load_flax_params


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    model = transformers.ViTModel(
        transformers.ViTConfig(
            image_size=16,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    model.save_pretrained(path, safe_serialization=True)
    return path, model


def test_convert_cli_writes_flax_params(vit_dir, tmp_path, capsys):
    path, model = vit_dir
    out = tmp_path / "vit.safetensors"
    run(["emojax", "convert", "--model=vit", f"--input={path}", f"--output={out}"])
    assert "wrote" in capsys.readouterr().out
    params = load_flax_params(out)["params"]
    np.testing.assert_array_equal(
        params["encoder"]["layer_0"]["attn"]["query"]["kernel"],
        model.state_dict()["layers.0.attention.q_proj.weight"].numpy().T,
    )


def test_convert_cli_reports_a_mismatch(vit_dir, tmp_path, capsys):
    path, _ = vit_dir
    with pytest.raises(SystemExit) as info:
        run(
            [
                "emojax",
                "convert",
                "--model=bert",
                f"--input={path}",
                f"--output={tmp_path / 'x.safetensors'}",
            ]
        )
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "missing tensors" in err and "unexpected tensors" in err


def test_convert_cli_missing_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(
            [
                "emojax",
                "convert",
                "--model=vit",
                f"--input={tmp_path}",
                f"--output={tmp_path / 'x.safetensors'}",
            ]
        )
    assert "config.json" in capsys.readouterr().err


def test_convert_cli_names_a_config_of_another_architecture(vit_dir, tmp_path, capsys):
    path, _ = vit_dir
    with pytest.raises(SystemExit) as info:
        run(["emojax", "convert", "--model=clip", f"--input={path}", f"--output={tmp_path / 'x'}"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "'vision_config'" in err and "--model" in err and "'vit'" in err


def test_convert_cli_missing_input(tmp_path, capsys):
    missing = tmp_path / "no_such_checkpoint"
    with pytest.raises(SystemExit) as info:
        run(
            ["emojax", "convert", "--model=vit", f"--input={missing}", f"--output={tmp_path / 'x'}"]
        )
    assert info.value.code == 1
    assert f"--input {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
