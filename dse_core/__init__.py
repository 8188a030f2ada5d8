"""dse: invert images into the latent space of pretrained GANs with a Diverse Similarity Encoder.

The public API; plugins import only from here and ``dse_core.nn``.
"""

from .encoder import Encoder, EncoderConfig, EncoderOutput
from .errors import CheckpointError, ConfigError, DseError, DseWarning, PluginError, UnknownNameError
from .families import CheckpointFormat, GanFamily
from .hookspecs import hookimpl
from .hub import ChecksumError, PretrainedMixin, generator_fingerprint, push_folder
from .interfaces import Generator, StyleGenerator
from .invert import Inversion, Inverter
from .loading import check_encoder_matches, load_encoder, load_generator, resolve_device
from .plugins import PluginHost, get_host, use_host
from .refine import Refinement, refine_encoder, refine_w
from .registry import CheckpointEntry, HubLocation

__version__ = "0.1.0"

__all__ = [
    "CheckpointEntry", "CheckpointError", "CheckpointFormat", "ChecksumError", "ConfigError", "DseError", "DseWarning",
    "Encoder", "EncoderConfig", "EncoderOutput", "GanFamily", "Generator", "HubLocation", "Inversion", "Inverter",
    "PluginError", "PluginHost", "PretrainedMixin", "Refinement", "StyleGenerator", "UnknownNameError",
    "check_encoder_matches", "generator_fingerprint", "get_host", "hookimpl", "load_encoder", "load_generator",
    "push_folder", "refine_encoder", "refine_w", "resolve_device", "use_host",
]
