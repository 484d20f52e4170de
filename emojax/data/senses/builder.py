"""TFDS builder of ``emojax_senses`` (array_record; needs no TensorFlow and no download)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from emojax.data.features import raw_tensor
from emojax.data.lexicon import EMOTIONS, load_lexicon
from emojax.data.senses import render
from emojax.data.senses.generate import generate_split
from emojax.data.senses.scenes import SENSES, SPLITS


def features() -> tfds.features.FeaturesDict:
    """The TFDS feature spec (plain tensors: TFDS' Image/Audio features would need TensorFlow)."""
    size, n_emo = render.IMAGE_SIZE, len(EMOTIONS)
    return tfds.features.FeaturesDict(
        {
            "image": raw_tensor((size, size, 3), np.uint8),
            "face": raw_tensor((size, size, 1), np.uint8),
            "audio": raw_tensor((render.AUDIO_SAMPLES,), np.float32),
            "touch": raw_tensor((2,), np.float32),
            "words": tfds.features.Tensor(shape=(len(SENSES),), dtype=np.object_),
            "word_ids": raw_tensor((len(SENSES),), np.int32),
            "emotion": raw_tensor((n_emo,), np.float32),
            "emotion_multi_hot": raw_tensor((n_emo,), np.int32),
            "sentiment": raw_tensor((2,), np.float32),
            "label": raw_tensor((), np.int32),
        }
    )


@dataclasses.dataclass(eq=False)
class SensesConfig(tfds.core.BuilderConfig):
    """Size and seed of a build. Same config -> byte-identical files."""

    seed: int = 0
    num_train: int = 20_000
    num_validation: int = 2_000
    num_test: int = 2_000

    def num_examples(self, split: str) -> int:
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}[
            split
        ]


def make_config(
    seed: int = 0, num_train: int = 20_000, num_validation: int = 2_000, num_test: int = 2_000
) -> SensesConfig:
    """A config whose name encodes its parameters, so different builds never share a cache dir."""
    for field, value in [
        ("num_train", num_train),
        ("num_validation", num_validation),
        ("num_test", num_test),
    ]:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"emojax_senses: {field} must be a positive int, got {value!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"emojax_senses: seed must be a non-negative int, got {seed!r}")
    default = (seed, num_train, num_validation, num_test) == (0, 20_000, 2_000, 2_000)
    name = "default" if default else f"s{seed}_n{num_train}_{num_validation}_{num_test}"
    return SensesConfig(
        name=name,
        description=f"seed {seed}; {num_train}/{num_validation}/{num_test} examples",
        seed=seed,
        num_train=num_train,
        num_validation=num_validation,
        num_test=num_test,
    )


class EmojaxSenses(tfds.core.GeneratorBasedBuilder):
    """Scenes of NRC-lexicon words over the five senses with rendered image/sound/touch/face."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file next to the code (nothing is downloaded); also avoids TFDS resolving
    # the package as a resource, which fails for some editable installs.
    code_path = None
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [make_config()]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=features(),
            supervised_keys=None,
            disable_shuffling=True,  # examples are already i.i.d.; keeps the writer fast
            citation=(
                "@article{mohammad2013crowdsourcing, title={Crowdsourcing a Word-Emotion "
                "Association Lexicon}, author={Mohammad, Saif M. and Turney, Peter D.}, "
                "journal={Computational Intelligence}, volume={29}, number={3}, "
                "pages={436--465}, year={2013}}"
            ),
        )

    # Processes rendering examples during a build (set by get_builder; 0: in-process).
    generation_workers = 0

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded
        load_lexicon()  # fail early with a clear message if nrclex is missing
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        yield from generate_split(
            config.seed, split, config.num_examples(split), self.generation_workers
        )
