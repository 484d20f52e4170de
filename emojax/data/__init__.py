"""emojax.data: datasets (TFDS builders, array_record, no TensorFlow) and grain pipelines.

Submodules (imported on use; none is imported here, so ``import emojax.data`` stays cheap):

- ``senses``: ``emojax_senses``, the built-in default dataset (``senses.load_source(split)``)
- ``lexicon``: the NRC Emotion Lexicon shipped by ``nrclex``
- ``iemocap``, ``emotion_roi``, ``emoset``, ``howto100m``: real datasets from ``manual_dir`` files
- ``retrieval_features``: text -> video retrieval evaluation clips (YouCook2 / MSR-VTT style)
- ``word_vectors``: word2vec / GloVe files and MCN's caption tokeniser
- ``transforms``: per-example grain maps (tokenise, image ops, waveform fit, padding)
- ``pipeline``: source -> shuffled, per-process, transformed, batched, checkpointable iterator

See docs/data.md.
"""
