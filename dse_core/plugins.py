"""The plugin host: finds plugins, isolates their failures, and answers lookups.

Entry points in the ``dse`` group are loaded one by one, each in its own
try/except, and every hook call is made plugin by plugin: a plugin that fails to
import or whose hook raises is recorded (and shown by ``dse plugins`` and ``dse
models``) while the others keep working. The host also gathers the checkpoint
registry: every ``register_checkpoints`` entry, the project's own ``registry/*.toml`` files
first (:class:`dse_core.models.registry.BuiltinCatalogue`, a built-in plugin), then each plugin's. ``DSE_LOAD_PLUGINS=a,b`` loads only the named plugins
(entry-point names, e.g. ``stylegan2``, or distribution names, e.g. ``dse-plugin-stylegan2``);
set and empty, none.

A family name in :data:`dse_core.families.KNOWN_PACKAGES` may only be registered by that
package's distribution; any other name goes to the first plugin that registers it, and a
second plugin registering it is reported on both rows.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import re
import traceback
from importlib import metadata
from typing import Any, Iterator

import attrs
import pluggy

from . import hookspecs
from .errors import DseError, PluginError, UnknownNameError
from .families import KNOWN_PACKAGES, GanFamily
from .models import registry

ENTRY_POINT_GROUP = "dse"
BUILTIN = "dse-gan"  # the built-in plugin (the project's registry): listed by `dse plugins` only if it fails


@attrs.frozen
class PluginInfo:
    """One row of ``dse plugins``."""

    name: str
    distribution: str = ""
    version: str = ""
    families: tuple[str, ...] = ()
    error: str | None = None  # why it (or one of its hooks) failed, if it did
    warning: str | None = None  # it works, but something about it needs the user's attention (a shared family name)


class PluginHost:
    """A pluggy manager plus what the plugins registered through it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("dse")
        self.pm.add_hookspecs(hookspecs)
        self._origin: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
        self._errors: dict[str, str] = {}
        self._families: dict[str, GanFamily] | None = None
        self._family_owner: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}  # plugin name -> its families that later plugins registered too
        self._checkpoints: dict[str, Any] | None = None
        self.registry_errors: list[str] = []  # bad registry entries, each naming where it came from (`dse models`)
        self.skipped: dict[str, str] = {}  # installed entry points DSE_LOAD_PLUGINS leaves out -> distribution
        self.register(registry.BuiltinCatalogue(), name=BUILTIN, distribution=BUILTIN)

    # -- loading ---------------------------------------------------------------
    def load_entry_points(self, only: set[str] | None = None) -> None:
        """Load every ``dse`` entry point, or those named in ``only`` (``DSE_LOAD_PLUGINS``)."""
        installed = metadata.entry_points(group=ENTRY_POINT_GROUP)
        if only is not None:
            only = _entry_point_names(only, installed)
            self.skipped = {ep.name: ep.dist.name if ep.dist else "" for ep in installed if ep.name not in only}
            for name in sorted(only - {ep.name for ep in installed}):
                self._origin[name] = ("", "")
                self._errors[name] = ("named in DSE_LOAD_PLUGINS, but no installed plugin has this name (installed: "
                                      + (", ".join(sorted({ep.name for ep in installed})) or "none") + ")")
        for ep in installed:
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.name if ep.dist else ""
            version = ep.dist.version if ep.dist else ""
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(ep.name, dist, version, exc)
                continue
            self.register(plugin, name=ep.name, distribution=dist, version=version)

    def register(self, plugin: Any, name: str | None = None, distribution: str = "", version: str = "") -> str:
        """Register a plugin object (a module or any object with hookimpls)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(name, distribution, version, exc)
            return name
        self._origin[name] = (distribution, version)
        self._families = None  # recomputed on next lookup
        self._checkpoints = None
        return name

    def _fail(self, name: str, distribution: str, version: str, exc: BaseException, hook: Any = None) -> None:
        """Record why plugin ``name`` failed; ``hook`` is the hook function that raised, if one did."""
        self._origin.setdefault(name, (distribution, version))
        at = _plugin_location(exc, hook)
        self._errors[name] = f"{type(exc).__name__}: {exc}" + (f" (at {at})" if at else "")

    # -- what plugins registered ----------------------------------------------
    @property
    def families(self) -> dict[str, GanFamily]:
        if self._families is None:
            self._families = {}
            self._collect_families()
        return self._families

    def _collect_families(self) -> None:
        self._family_owner = {}
        self._conflicts = {}
        for impl in self.pm.hook.register_gan_families.get_hookimpls():
            plugin_name = impl.plugin_name
            try:
                impl.function(register=lambda family, _plugin=plugin_name: self._add_family(family, _plugin))
            except Exception as exc:
                dist, version = self._origin.get(plugin_name, ("", ""))
                self._fail(plugin_name, dist, version, exc, hook=impl.function)

    def _add_family(self, family: GanFamily, plugin: str) -> None:
        """``register`` of the ``register_gan_families`` hook, for ``plugin``: validate, then keep ``family``."""
        if not isinstance(family, GanFamily):
            raise PluginError(f"register() takes a GanFamily, got {type(family).__name__}")
        distribution = self._origin.get(plugin, ("", ""))[0]
        official = KNOWN_PACKAGES.get(family.name)
        if official and _canonical(distribution) != _canonical(official):
            raise PluginError(f"GAN family {family.name!r} is reserved for the project's {official}; plugin "
                              f"{self._describe(plugin)} may not register it (choose another family name)")
        if family.name in self._families:
            owner = self._family_owner[family.name]
            self._conflicts.setdefault(owner, []).append(
                f"GAN family {family.name!r} is also registered by plugin {self._describe(plugin)}; "
                "this plugin's is used (uninstall one of them)")
            raise PluginError(f"GAN family {family.name!r} is already registered by plugin {self._describe(owner)}")
        if getattr(family.generator_class, "family", None) != family.name:
            raise PluginError(
                f"{family.generator_class.__name__}.family must be {family.name!r} "
                f"(is {getattr(family.generator_class, 'family', None)!r})"
            )
        self._families[family.name] = attrs.evolve(family, package=family.package or distribution)
        self._family_owner[family.name] = plugin

    def _describe(self, plugin: str) -> str:
        distribution = self._origin.get(plugin, ("", ""))[0]
        return f"{plugin!r}" + (f" ({distribution})" if distribution else "")

    @property
    def checkpoints(self) -> dict:
        """Registry entries by id: the project's files first, then each plugin's (see :mod:`dse_core.models.registry`)."""
        if self._checkpoints is None:
            self._checkpoints = {}
            self.registry_errors = []
            self._collect_checkpoints()
        return self._checkpoints

    def _collect_checkpoints(self) -> None:
        for impl in self.pm.hook.register_checkpoints.get_hookimpls():  # in registration order: the built-in first
            plugin_name = impl.plugin_name
            try:
                impl.function(register=lambda item, _plugin=plugin_name: self._add_checkpoints(item, _plugin))
            except Exception as exc:
                dist, version = self._origin.get(plugin_name, ("", ""))
                self._fail(plugin_name, dist, version, exc, hook=impl.function)

    def _add_checkpoints(self, item: Any, plugin: str) -> None:
        """``register`` of the ``register_checkpoints`` hook: an entry, a dict, a .toml file or a folder of them.

        A bad entry (an invalid file, an id already taken) is reported in ``registry_errors``, naming where it
        came from, and the others are kept; a hook that raises fails its plugin.
        """
        origin = "the dse registry" if plugin == BUILTIN else f"plugin {plugin}"
        if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            entries, errors = registry.load_dir(item)
            self.registry_errors += [str(e) if plugin == BUILTIN else f"{origin}: {e}" for e in errors]
            if plugin != BUILTIN:  # the project's files are named by their path
                entries = [attrs.evolve(e, origin=f"{origin}: {os.path.basename(e.origin)}") for e in entries]
        else:
            try:
                entries = registry.coerce(item, origin=origin)
            except DseError as exc:
                self.registry_errors.append(f"{origin}: {exc}")
                return
        for entry in entries:
            if entry.id in self._checkpoints:
                self.registry_errors.append(f"{entry.origin}: $.id: {entry.id!r} is already defined by "
                                            f"{self._checkpoints[entry.id].origin}")
            else:
                self._checkpoints[entry.id] = entry

    def checkpoint(self, name: str):
        """The registry entry ``name`` (an id, or ``id@revision``); None when it names none."""
        if "/" in name or not registry.is_id(name.partition("@")[0]):
            return None
        return self.checkpoints.get(name.partition("@")[0])

    def family(self, name: str, package: str | None = None) -> GanFamily:
        """The installed family ``name``; else an error saying how to get it (``package``: the distribution that
        provides it, as a registry entry names it; the project's own families are known without it)."""
        families = self.families
        if name in families:
            return families[name]
        failed = sorted(self._errors)
        suspects = [p for p in failed if self._resembles(p, name)]
        package = package or KNOWN_PACKAGES.get(name)
        if suspects:
            hint = "; ".join(f"plugin {self._describe(p)} failed to load: {self._errors[p]}" for p in suspects)
        elif package and (name in self.skipped or package in self.skipped.values()):
            hint = f"{package} is installed, but DSE_LOAD_PLUGINS={os.environ.get('DSE_LOAD_PLUGINS', '')!r} leaves it out"
        else:
            hint = (f"install it with `pip install {package}`" if package
                    else "GAN families come from plugins; `dse plugins` lists the installed ones")
            if failed:
                hint += f"; plugins that failed to load or register: {', '.join(failed)} (`dse plugins` shows why)"
        raise UnknownNameError("GAN family", name, families, hint=hint)

    def _resembles(self, plugin: str, family: str) -> bool:
        """Whether a plugin's name or distribution looks like it would provide ``family``."""
        distribution = _canonical(self._origin.get(plugin, ("",))[0])
        if family in KNOWN_PACKAGES:  # an official family: only its own package is to blame
            return plugin == family or distribution == _canonical(KNOWN_PACKAGES[family])
        names = {_canonical(plugin), distribution} - {""}
        names |= {n.removeprefix("dse-plugin-") for n in names}
        wanted = _canonical(family)
        return any(n == wanted or difflib.SequenceMatcher(None, n, wanted).ratio() >= 0.8 for n in names)

    def family_sources(self) -> dict[str, list[GanFamily]]:
        """Where each family's code lives, to tell its frames in a traceback: the folder of the top-level package
        its generator class comes from (``dse_plugin_x/``), or the file of a plugin that is a single module."""
        import sys

        sources = {}
        for family in self.families.values():
            top = sys.modules.get(family.generator_class.__module__.partition(".")[0])
            paths = list(getattr(top, "__path__", None) or [])  # a package: all of it
            if not paths and getattr(top, "__file__", None):  # a single module: that file alone
                paths = [top.__file__]
            for path in paths:
                path = os.path.abspath(path) + (os.sep if os.path.isdir(path) else "")
                if not path.startswith(_CORE_DIR):  # the core's own frames blame nobody
                    sources.setdefault(path, []).append(family)  # one package may hold several families
        return sources

    def plugins(self) -> list[PluginInfo]:
        families = self.families  # runs the hooks, so hook failures are recorded too
        self.checkpoints
        rows = []
        for name in sorted(set(self._origin) | set(self._errors)):
            if name == BUILTIN and name not in self._errors:
                continue
            dist, version = self._origin.get(name, ("", ""))
            owned = tuple(sorted(f for f, owner in self._family_owner.items() if owner == name and f in families))
            rows.append(PluginInfo(name, dist, version, owned, self._errors.get(name),
                                   "; ".join(self._conflicts.get(name, [])) or None))
        return rows


def plugin_of_traceback(exc: BaseException) -> tuple[str, str, str] | None:
    """(families, distribution, file:line) of the plugin an exception was raised in; None when it came from elsewhere.

    The innermost frame in a family's own code (see :meth:`PluginHost.family_sources`) decides. Only the
    families already loaded are asked: nothing is imported to blame one.
    """
    host = _host
    if host is None or host._families is None:
        return None
    sources = host.family_sources()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(frame.filename)
        for source, families in sources.items():
            if path == source or (source.endswith(os.sep) and path.startswith(source)):
                return ("/".join(f.name for f in families), families[0].package or "an unnamed plugin",
                        f"{frame.filename}:{frame.lineno}")
    return None


def _canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``dse_plugin_X`` is ``dse-plugin-x``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _entry_point_names(wanted: set[str], installed) -> set[str]:
    """``DSE_LOAD_PLUGINS`` names as entry-point names: a distribution's name stands for its entry points."""
    by_dist: dict[str, set[str]] = {}
    for ep in installed:
        if ep.dist is not None:
            by_dist.setdefault(_canonical(ep.dist.name), set()).add(ep.name)
    names = set()
    for name in wanted:
        if name not in {ep.name for ep in installed} and _canonical(name) in by_dist:
            names |= by_dist[_canonical(name)]
        else:
            names.add(name)
    return names


_CORE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _plugin_location(exc: BaseException, hook: Any = None) -> str | None:
    """``file:line`` in the plugin where ``exc`` came from: its last frame outside the core and importlib.

    Errors the host raises while validating a registration have only core frames after the
    plugin's ``register(...)`` call, so that call is the line shown; without any plugin frame,
    the hook function's own first line.
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    outside = [f for f in frames if not os.path.abspath(f.filename).startswith(_CORE_DIR)]
    if outside:
        return f"{outside[-1].filename}:{outside[-1].lineno}"
    if hook is not None:
        try:
            return f"{inspect.getsourcefile(hook)}:{inspect.getsourcelines(hook)[1]}"
        except (OSError, TypeError):
            pass
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host, loading installed plugins on first use."""
    global _host
    if _host is None:
        host = PluginHost()
        wanted = os.environ.get("DSE_LOAD_PLUGINS")
        only = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        host.load_entry_points(only)
        _host = host
    return _host


@contextlib.contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Swap the process-wide host (tests register plugin objects this way)."""
    global _host
    previous, _host = _host, host
    try:
        yield host
    finally:
        _host = previous
