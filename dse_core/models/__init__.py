"""Where models come from: dse's on-disk format and its mixin, the Hugging Face Hub and hashes, the
checkpoint registry, model cards, safe readers of other projects' files and the conversion toolkit.
The public names are re-exported by ``dse_core``; ``dse_core.loading`` (``load_generator`` /
``load_encoder``) puts them together with the plugins' readers.

Modules, from the ground up: ``files`` and ``safe_pickle`` (reading foreign files without running their
code), ``convert`` (the conversion toolkit), ``format`` (config.json + model.safetensors), ``card``,
``hub``, ``pretrained`` (``PretrainedMixin``), ``registry``. None imports the plugin host.
"""
