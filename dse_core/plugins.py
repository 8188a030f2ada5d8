"""The plugin host: finds plugins, isolates their failures, and answers lookups.

Entry points in the ``dse`` group are loaded one by one, each in its own
try/except, and every hook call is made plugin by plugin: a plugin that fails to
import or whose hook raises is recorded (and shown by ``dse plugins`` and ``dse
models``) while the others keep working. The host also gathers the checkpoint
registry: the project's ``registry/*.toml`` files, then each plugin's
``register_checkpoints`` entries. ``DSE_LOAD_PLUGINS=a,b`` loads only the named entry points;
set and empty, none.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from importlib import metadata
from typing import Any, Iterator

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError, UnknownNameError
from .families import KNOWN_PACKAGES, GanFamily

ENTRY_POINT_GROUP = "dse"


@attrs.frozen
class PluginInfo:
    """One row of ``dse plugins``."""

    name: str
    distribution: str = ""
    version: str = ""
    families: tuple[str, ...] = ()
    error: str | None = None  # why it (or one of its hooks) failed, if it did


class PluginHost:
    """A pluggy manager plus what the plugins registered through it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("dse")
        self.pm.add_hookspecs(hookspecs)
        self._origin: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
        self._errors: dict[str, str] = {}
        self._families: dict[str, GanFamily] | None = None
        self._family_owner: dict[str, str] = {}
        self._checkpoints: dict[str, Any] | None = None
        self.registry_errors: list[str] = []  # bad registry files (the plugins' go to their own row)
        self.skipped: dict[str, str] = {}  # installed entry points DSE_LOAD_PLUGINS leaves out -> distribution

    # -- loading ---------------------------------------------------------------
    def load_entry_points(self, only: set[str] | None = None) -> None:
        """Load every ``dse`` entry point, or those named in ``only`` (``DSE_LOAD_PLUGINS``)."""
        installed = metadata.entry_points(group=ENTRY_POINT_GROUP)
        if only is not None:
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

    def _fail(self, name: str, distribution: str, version: str, exc: BaseException) -> None:
        self._origin.setdefault(name, (distribution, version))
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
        where = frames[-1] if frames else None  # the plugin's own line, not importlib's
        at = f" (at {where.filename}:{where.lineno})" if where else ""
        self._errors[name] = f"{type(exc).__name__}: {exc}{at}"

    # -- what plugins registered ----------------------------------------------
    @property
    def families(self) -> dict[str, GanFamily]:
        if self._families is None:
            self._families = {}
            self._collect_families()
        return self._families

    def _collect_families(self) -> None:
        for impl in self.pm.hook.register_gan_families.get_hookimpls():
            plugin_name = impl.plugin_name
            distribution = self._origin.get(plugin_name, ("", ""))[0]

            def register(family: GanFamily, _plugin=plugin_name, _dist=distribution) -> None:
                if not isinstance(family, GanFamily):
                    raise PluginError(f"register() takes a GanFamily, got {type(family).__name__}")
                if family.name in self._families:
                    owner = self._family_owner[family.name]
                    raise PluginError(f"GAN family {family.name!r} is already registered by plugin {owner!r}")
                if getattr(family.generator_class, "family", None) != family.name:
                    raise PluginError(
                        f"{family.generator_class.__name__}.family must be {family.name!r} "
                        f"(is {getattr(family.generator_class, 'family', None)!r})"
                    )
                self._families[family.name] = attrs.evolve(family, package=family.package or _dist)
                self._family_owner[family.name] = _plugin

            try:
                impl.function(register=register)
            except Exception as exc:
                dist, version = self._origin.get(plugin_name, ("", ""))
                self._fail(plugin_name, dist, version, exc)

    @property
    def checkpoints(self) -> dict:
        """Registry entries by id: the project's files first, then each plugin's (see :mod:`dse_core.registry`)."""
        if self._checkpoints is None:
            self._checkpoints = {}
            self.registry_errors = []
            self._collect_checkpoints()
        return self._checkpoints

    def _collect_checkpoints(self) -> None:
        from . import registry

        for folder in registry.search_path():
            entries, errors = registry.load_dir(folder)
            self.registry_errors += [str(e) for e in errors]
            for entry in entries:
                if entry.id in self._checkpoints:
                    self.registry_errors.append(f"{entry.origin}: $.id: {entry.id!r} is already defined by "
                                                f"{self._checkpoints[entry.id].origin}")
                    continue
                self._checkpoints[entry.id] = entry
        for impl in self.pm.hook.register_checkpoints.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(item, _plugin=plugin_name) -> None:
                for entry in registry.coerce(item, origin=f"plugin {_plugin}"):
                    if entry.id in self._checkpoints:
                        raise PluginError(f"registry id {entry.id!r} is already defined by {self._checkpoints[entry.id].origin}")
                    self._checkpoints[entry.id] = entry

            try:
                impl.function(register=register)
            except Exception as exc:
                dist, version = self._origin.get(plugin_name, ("", ""))
                self._fail(plugin_name, dist, version, exc)

    def family(self, name: str) -> GanFamily:
        families = self.families
        if name in families:
            return families[name]
        if name in KNOWN_PACKAGES:
            package = KNOWN_PACKAGES[name]
            failed = [p for p in self._errors if p == name or self._origin.get(p, ("",))[0] == package]
            if failed:
                hint = f"plugin {failed[0]!r} failed to load: {self._errors[failed[0]]}"
            elif name in self.skipped or package in self.skipped.values():
                hint = f"{package} is installed, but DSE_LOAD_PLUGINS={os.environ.get('DSE_LOAD_PLUGINS', '')!r} leaves it out"
            else:
                hint = f"install it with `pip install {package}`"
        else:
            hint = "GAN families come from plugins; `dse plugins` lists the installed ones"
        raise UnknownNameError("GAN family", name, families, hint=hint)

    def plugins(self) -> list[PluginInfo]:
        families = self.families  # runs the hooks, so hook failures are recorded too
        self.checkpoints
        rows = []
        for name in sorted(set(self._origin) | set(self._errors)):
            dist, version = self._origin.get(name, ("", ""))
            owned = tuple(sorted(f for f, owner in self._family_owner.items() if owner == name and f in families))
            rows.append(PluginInfo(name, dist, version, owned, self._errors.get(name)))
        return rows


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
