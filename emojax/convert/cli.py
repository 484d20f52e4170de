"""``emojax convert``: a Hugging Face checkpoint directory (or weights file) -> Flax params.

    emojax convert --model=bert --input=DIR --output=params.safetensors
    emojax convert --model=vit --input=model.safetensors --config=config.json --output=p.safetensors

The output is a safetensors file of the Flax variables (``params/...`` and, for ResNet,
``batch_stats/...``), readable with :func:`emojax.convert.load_flax_params`. Nothing is unpickled:
weights are read with safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

MODELS = ("bert", "vit", "clip", "resnet")


def _architectures() -> dict:
    """``--model`` name -> (emojax config class, converter); imported on use (fast ``--help``)."""
    from emojax import convert as cv
    from emojax.nn import BertConfig, CLIPConfig, ResNetConfig, ViTConfig

    return {
        "bert": (BertConfig, cv.convert_bert),
        "vit": (ViTConfig, cv.convert_vit),
        "clip": (CLIPConfig, cv.convert_clip),
        "resnet": (ResNetConfig, cv.convert_resnet),
    }


def convert(model: str, state_dict, config: dict):
    """``(module, variables)`` for a Hugging Face ``config.json`` dict and its state_dict."""
    if model not in MODELS:
        raise ValueError(f"--model={model!r}; choose one of {MODELS}")
    config_class, convert_fn = _architectures()[model]
    try:
        model_config = config_class.from_dict(config)
    except KeyError as err:
        raise ValueError(
            f"config.json has no {err} entry, which a {model} config needs: is --model right? "
            f"(its model_type is {config.get('model_type', 'not given')!r})"
        ) from None
    return convert_fn(state_dict, model_config)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=MODELS, help="architecture of the weights")
    p.add_argument(
        "--input",
        required=True,
        help="checkpoint directory (config.json + model.safetensors) or weights file",
    )
    p.add_argument(
        "--config", default=None, help="Hugging Face config.json (default: <input dir>/config.json)"
    )
    p.add_argument("--output", required=True, help="where to write the Flax .safetensors")
    return p


def main(command: str = "convert", argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    args = _parser(argv[0]).parse_args(argv[1:])
    from emojax.convert.core import ConversionError, load_state_dict, save_flax_params

    config_path = args.config or os.path.join(
        args.input if os.path.isdir(args.input) else os.path.dirname(args.input), "config.json"
    )
    try:
        if not os.path.exists(args.input):
            raise FileNotFoundError(f"--input {args.input} does not exist")
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"config file {config_path} not found; pass --config")
        with open(config_path) as f:
            config = json.load(f)
        _, variables = convert(args.model, load_state_dict(args.input), config)
        save_flax_params(variables, args.output)
    except (ConversionError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"emojax {command}: error: {err}", file=sys.stderr)
        sys.exit(1)
    import jax

    count = sum(x.size for x in jax.tree.leaves(variables))
    print(f"emojax {command}: wrote {count:,} values of a {args.model} model to {args.output}")


if __name__ == "__main__":
    main()
