"""dse: invert images into the latent space of pretrained GANs with a Diverse Similarity Encoder.

The public API; plugins import only from here and ``dse_core.nn``.
"""

from .encoder import Encoder, EncoderConfig, EncoderOutput
from .errors import CheckpointError, ConfigError, DseError, PluginError, UnknownNameError
from .families import CheckpointFormat, GanFamily
from .hookspecs import hookimpl
from .hub import PretrainedMixin
from .interfaces import Generator, StyleGenerator
from .invert import Inversion, Inverter
from .loading import load_encoder, load_generator, resolve_device
from .plugins import PluginHost, get_host, use_host

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "CheckpointFormat", "ConfigError", "DseError", "Encoder", "EncoderConfig", "EncoderOutput",
    "GanFamily", "Generator", "Inversion", "Inverter", "PluginError", "PluginHost", "PretrainedMixin", "StyleGenerator", "UnknownNameError",
    "get_host", "hookimpl", "load_encoder", "load_generator", "resolve_device", "use_host",
]
