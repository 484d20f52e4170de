"""emojax: JAX/Flax library for training multimodal emotion models at scale.

Subpackages (arrows point down): ``models`` -> ``nn``; ``losses`` -> ``ops``;
``train`` knows a method only through ``emojax.models.base.Method``.
"""

__version__ = "0.1.0"
