"""emojax.nn: Flax (Linen) building blocks with logical axis names and a compute ``dtype``.

Parameters are float32 and annotated for sharding with the names of ``emojax/parallel/axes.py``.
"""

from emojax.nn.alpha import alpha_init_fn, learnable_alpha
from emojax.nn.audio import (
    AudioEncoder,
    AudioEncoderConfig,
    LogMelConfig,
    log_mel_spectrogram,
    mel_filterbank,
    power_spectrogram,
)
from emojax.nn.bert import BertConfig, BertEncoder, l2_normalize, mean_pool
from emojax.nn.clip import CLIP, CLIPConfig, CLIPTextConfig, CLIPTextTransformer
from emojax.nn.geu import ContextGating, GatedEmbeddingUnit
from emojax.nn.graph import GCNConv, RGCNConv, TransformerConv, gcn_norm, segment_softmax
from emojax.nn.resdavenet import ResDAVEnet, ResDAVEnetConfig
from emojax.nn.resnet import ResNet, ResNetConfig, resnet_config
from emojax.nn.transformer import (
    EncoderBlock,
    Mlp,
    MultiHeadAttention,
    TransformerEncoder,
    causal_mask,
    padding_mask,
)
from emojax.nn.vit import ViT, ViTConfig

__all__ = [
    "CLIP",
    "AudioEncoder",
    "AudioEncoderConfig",
    "BertConfig",
    "BertEncoder",
    "CLIPConfig",
    "CLIPTextConfig",
    "CLIPTextTransformer",
    "ContextGating",
    "EncoderBlock",
    "GCNConv",
    "GatedEmbeddingUnit",
    "LogMelConfig",
    "Mlp",
    "MultiHeadAttention",
    "RGCNConv",
    "ResDAVEnet",
    "ResDAVEnetConfig",
    "ResNet",
    "ResNetConfig",
    "TransformerConv",
    "TransformerEncoder",
    "ViT",
    "ViTConfig",
    "alpha_init_fn",
    "causal_mask",
    "gcn_norm",
    "l2_normalize",
    "learnable_alpha",
    "log_mel_spectrogram",
    "mean_pool",
    "mel_filterbank",
    "padding_mask",
    "power_spectrogram",
    "resnet_config",
    "segment_softmax",
]
