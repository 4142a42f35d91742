"""Data: dataset readers, decoding + tf.data pipelines, augmentations, real demo audio.

* :mod:`tfsonify.data.readers`  -- folder-per-class, Speech Commands v2, FSD50K, ESC-50 -> ``ClipList``
* :mod:`tfsonify.data.pipeline` -- ``decode_clips`` (once, cached), ``training_dataset``, ``evaluation_dataset``
* :mod:`tfsonify.data.augment`  -- stateless, XLA-safe gain / noise / time mask / mixup / mix-back / crops
* :mod:`tfsonify.data.sources`  -- speech and instruments from Debian packages (espeak-ng, flite, ...)
* :mod:`tfsonify.data.demo`     -- the keyword demo dataset builder (``tfsonify build-demo-data``)
"""
