"""emojax.convert: PyTorch / safetensors weights -> Flax params by explicit name maps.

Never unpickles untrusted files: safetensors, or ``torch.load(weights_only=True)``.
"""

from emojax.convert.bert import bert_rules, convert_bert, load_bert, load_minilm, minilm_path
from emojax.convert.clip import clip_rules, convert_clip
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
from emojax.convert.graph import gcn_rules, rgcn_rules, transformer_conv_rules
from emojax.convert.mcn import convert_mcn, mcn_rules
from emojax.convert.resdavenet import convert_resdavenet, resdavenet_rules
from emojax.convert.resnet import convert_resnet, resnet_rules
from emojax.convert.vit import convert_vit, vit_rules

__all__ = [
    "ConversionError",
    "Rule",
    "bert_rules",
    "clip_rules",
    "convert_bert",
    "convert_clip",
    "convert_mcn",
    "convert_resdavenet",
    "convert_resnet",
    "convert_vit",
    "flax_to_state_dict",
    "gcn_rules",
    "load_bert",
    "load_flax_params",
    "load_minilm",
    "load_state_dict",
    "mcn_rules",
    "minilm_path",
    "resdavenet_rules",
    "resnet_rules",
    "rgcn_rules",
    "save_flax_params",
    "state_dict_to_flax",
    "transformer_conv_rules",
    "unbox",
    "vit_rules",
]
