"""Name-map conversion: clear errors for missing / unexpected / mis-shaped tensors, safe loading,
round trips."""

import numpy as np
import pytest
import torch
import transformers

from emojax.convert import (
    ConversionError,
    Rule,
    convert_bert,
    flax_to_state_dict,
    load_flax_params,
    load_state_dict,
    save_flax_params,
    state_dict_to_flax,
)
from emojax.convert.bert import bert_rules
from emojax.nn.bert import BertConfig

SMALL = dict(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=20,
)


@pytest.fixture(scope="module")
def bert_state_dict():
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**SMALL), add_pooling_layer=True)
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_error_lists_missing_unexpected_and_mis_shaped(bert_state_dict):
    sd = dict(bert_state_dict)
    del sd["encoder.layer.0.attention.self.key.bias"]
    sd["encoder.layer.0.extra.weight"] = np.zeros(3, np.float32)
    sd["encoder.layer.0.output.dense.weight"] = np.zeros((16, 31), np.float32)
    with pytest.raises(ConversionError) as info:
        convert_bert(sd, BertConfig(**SMALL))
    err = info.value
    assert err.missing == ["encoder.layer.0.attention.self.key.bias"]
    assert err.unexpected == ["encoder.layer.0.extra.weight"]
    assert err.mis_shaped == [("encoder.layer.0.output.dense.weight", (16, 31), (16, 32))]
    message = str(err)
    for needle in (
        "missing tensors (1)",
        "unexpected tensors (1)",
        "has shape (16, 31)",
        "expected (16, 32)",
    ):
        assert needle in message


def test_wrong_config_reports_every_layer(bert_state_dict):
    two_layers = BertConfig(**(SMALL | {"num_hidden_layers": 2}))
    with pytest.raises(ConversionError, match="missing tensors \\(16\\)"):
        convert_bert(bert_state_dict, two_layers)


def test_flax_params_without_rule_are_reported():
    expected = {"a": np.zeros(2), "b": np.zeros(3)}
    with pytest.raises(ConversionError, match="Flax params with no rule \\(1\\): b"):
        state_dict_to_flax({"x": np.ones(2)}, [Rule("x", ("a",))], expected=expected)
    with pytest.raises(ValueError, match="transform"):
        Rule("x", ("a",), "transpose")


def test_round_trip_through_flax_and_back(bert_state_dict):
    module, variables = convert_bert(bert_state_dict, BertConfig(**SMALL))
    assert module.with_pooler
    rules = bert_rules(module.config, with_pooler=True)
    back = flax_to_state_dict(variables["params"], rules)
    buffers = {k for k in bert_state_dict if k.endswith(("position_ids", "token_type_ids"))}
    assert set(back) == set(bert_state_dict) - buffers
    for name, array in back.items():
        np.testing.assert_array_equal(array, bert_state_dict[name], err_msg=name)


def test_safe_loading_of_safetensors_and_torch_files(tmp_path, bert_state_dict):
    from safetensors.numpy import save_file

    save_file(bert_state_dict, str(tmp_path / "model.safetensors"))
    loaded = load_state_dict(tmp_path)  # a directory resolves to its model.safetensors
    assert set(loaded) == set(bert_state_dict)
    torch.save({k: torch.tensor(v) for k, v in bert_state_dict.items()}, tmp_path / "w.bin")
    from_bin = load_state_dict(tmp_path / "w.bin")
    np.testing.assert_array_equal(
        from_bin["pooler.dense.weight"], bert_state_dict["pooler.dense.weight"]
    )


def test_torch_file_with_code_is_refused(tmp_path):
    # weights_only=True refuses arbitrary pickled objects instead of executing them
    torch.save({"w": torch.zeros(2), "obj": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_state_dict(tmp_path / "evil.pt")


class _Evil:
    pass


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_dict(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_state_dict(tmp_path)
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown weights format"):
        load_state_dict(tmp_path / "w.npz")


def test_save_and_load_flax_params(tmp_path, bert_state_dict):
    _, variables = convert_bert(bert_state_dict, BertConfig(**SMALL))
    save_flax_params(variables["params"], tmp_path / "p.safetensors")
    again = load_flax_params(tmp_path / "p.safetensors")
    np.testing.assert_array_equal(
        again["encoder"]["layer_0"]["attn"]["query"]["kernel"],
        variables["params"]["encoder"]["layer_0"]["attn"]["query"]["kernel"],
    )
