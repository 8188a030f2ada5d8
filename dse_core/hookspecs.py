"""Hook specifications: the whole interface between the core and a plugin.

A plugin is a module (or object) with functions decorated by ``@hookimpl`` and is
exposed as an entry point in the ``dse`` group::

    [project.entry-points.dse]
    stylegan2 = "dse_plugin_stylegan2"

Each hook receives a ``register`` callback; the host validates what it is given.
"""

import pluggy

hookspec = pluggy.HookspecMarker("dse")
hookimpl = pluggy.HookimplMarker("dse")


@hookspec
def register_gan_families(register):
    """Call ``register(GanFamily(...))`` once for each GAN family the plugin provides."""


@hookspec
def register_checkpoints(register):
    """Call ``register(...)`` for each checkpoint the plugin ships registry entries for.

    ``register`` takes a :class:`dse_core.CheckpointEntry`, a dict with the fields of
    ``registry/README.md``, a ``.toml`` entry file, or a folder of them::

        @hookimpl
        def register_checkpoints(register):
            register(Path(__file__).parent / "registry")
    """
