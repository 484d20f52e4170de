"""emojax.convert: PyTorch / safetensors weights -> Flax params by explicit name maps.

Never unpickles untrusted files: safetensors, or ``torch.load(weights_only=True)``.
"""

from emojax.convert.bert import bert_rules, convert_bert, load_bert, load_minilm, minilm_path
from emojax.convert.core import (
    ConversionError,
    Rule,
    flax_to_state_dict,
    load_flax_params,
    load_state_dict,
    save_flax_params,
    state_dict_to_flax,
    unbox,
)

__all__ = [
    "ConversionError",
    "Rule",
    "bert_rules",
    "convert_bert",
    "flax_to_state_dict",
    "load_bert",
    "load_flax_params",
    "load_minilm",
    "load_state_dict",
    "minilm_path",
    "save_flax_params",
    "state_dict_to_flax",
    "unbox",
]
