"""``python -m dse_core.cli ...`` (what torchrun starts): the ``dse`` command."""

from . import run

run()
