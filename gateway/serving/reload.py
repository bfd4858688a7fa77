"""Apply an edited config's model list to a running registry (``POST /admin/reload``, SIGHUP) without
dropping a request: added models appear (start-up ones are loaded), removed ones stop answering new
requests (404) then drain and unload, changed ones drain, unload and load again with their new config
(requests arriving meanwhile wait for the new load, as for any on-demand load)."""

from __future__ import annotations

import asyncio
import logging

import msgspec

from gateway.config import ModelConfig, Settings
from gateway.serving.registry import Registry

log = logging.getLogger("gateway.lifecycle")


class ReloadResult(msgspec.Struct):
    """Model names by what the reload did to them."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: list[str]


async def apply_models(registry: Registry, settings: Settings) -> ReloadResult:
    """Make ``registry`` serve ``settings.served_models()`` (see the module docstring).

    Raises:
        ValueError: the new list gives one name to two models (nothing was changed then).
    """
    wanted = {config.name: config for config in settings.served_models()}
    names = [n for config in wanted.values() for n in config.served_names]
    if len(names) != len(set(names)):
        raise ValueError("the new config gives one model name or alias to two models")
    current = {served.name: served for served in registry.models}
    removed = [name for name in current if name not in wanted]
    changed = [name for name in current if name in wanted and _differs(current[name].config, wanted[name])]
    added = [name for name in wanted if name not in current]
    for name in removed:  # new requests answer 404; those in flight hold the old model and finish
        registry.remove(current[name])
    # a changed model's new self takes its names at once (new requests wait for its load); the old one
    # finishes its in-flight requests, then unloads
    fresh = [registry.replace(current[name], wanted[name]) for name in changed]
    fresh += [registry.add(wanted[name]) for name in added]
    await asyncio.gather(*(registry.unload(current[name], reason="reload") for name in removed + changed))
    await asyncio.gather(*(registry.load(served) for served in fresh if served.config.load == "startup"))
    result = ReloadResult(added, removed, changed, [n for n in current if n not in removed + changed])
    log.info("config reloaded: %s", msgspec.to_builtins(result), extra={"fields": {
        "event": "reload", **msgspec.to_builtins(result)}})
    return result


def _differs(old: ModelConfig, new: ModelConfig) -> bool:
    return old.model_dump() != new.model_dump()
