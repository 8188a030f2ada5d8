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
