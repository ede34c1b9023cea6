"""Loaders: turn a model file into a live TensorFlow/Keras object, and write nothing.

Runners (``verify/``) and writers (``convert/``) both stand on this layer; neither imports the
other. TensorFlow, Keras and tf_keras are imported lazily through :mod:`tfmodelkit.loaders.tf`,
inside the functions that need them, so importing any module here stays light. Every loader
refuses a model file that would run Python code unless its caller passes ``unsafe``.

- :mod:`~tfmodelkit.loaders.tf`: the framework imports, quiet, with install hints.
- :mod:`~tfmodelkit.loaders.keras`: the Keras ladder (Keras 3 safe mode, the legacy upgrader,
  tf_keras), architectures with weights loaded into them, a model's inputs and outputs.
- :mod:`~tfmodelkit.loaders.legacy` (+ ``legacy_config``, ``legacy_weights``): Keras 1 and early
  Keras 2 files rebuilt on tf_keras with their numbers kept.
- :mod:`~tfmodelkit.loaders.savedmodel`: ``tf.saved_model.load`` with its errors said for the user.
- :mod:`~tfmodelkit.loaders.checkpoint` (+ ``checkpoint_match``): a model rebuilt from code or an
  architecture and restored from a checkpoint.
- :mod:`~tfmodelkit.loaders.user_code`: ``--model MODULE:CALLABLE`` and ``--custom-objects``.
"""
