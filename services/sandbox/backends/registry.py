"""Sandbox backends by name: the built-in ones, and any a distribution declares in the
`mleb.sandbox_backends` entry-point group (each entry point names a `BackendProvider`).

MLEB_SANDBOX_BACKEND picks one by name; `auto` takes the first of AUTO_ORDER whose engine
answers. Nothing else in the service names a backend: it asks its `Capabilities`.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import structlog

from services.common.errors import invalid_field
from services.sandbox.backends.base import Backend, BackendProvider, BackendUnavailable
from services.sandbox.backends.docker import backend as docker
from services.sandbox.backends.kubernetes import backend as kubernetes
from services.sandbox.backends.local import backend as local
from services.sandbox.backends.slurm import backend as slurm
from services.sandbox.config import SandboxSettings

log = structlog.get_logger("mleb.sandbox")

ENTRY_POINT_GROUP = "mleb.sandbox_backends"
AUTO = "auto"
# Docker when an engine answers, else the local backend (with a warning).
AUTO_ORDER = ("docker", "local")

_providers: dict[str, BackendProvider] = {}
# Entry points that failed to load, by name, with why: named again if one is asked for.
_broken: dict[str, str] = {}
_loaded_entry_points = False


def register(provider: BackendProvider) -> None:
    """Adds a backend under its name. The same provider twice is a no-op (a built-in that
    is also declared as an entry point); another one under a taken name is refused."""
    if provider.name == AUTO:
        raise ValueError(f"{AUTO!r} is not a backend name: it picks one")
    existing = _providers.get(provider.name)
    if existing is not None and existing != provider:
        raise ValueError(f"two sandbox backends are named {provider.name!r}")
    _providers[provider.name] = provider


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            provider = point.load()
            if not isinstance(provider, BackendProvider) or provider.name != point.name:
                raise TypeError(f"{point.value} is not a BackendProvider named {point.name!r}")
            register(provider)
        except Exception as exc:  # a broken plugin must not stop the others
            _broken[point.name] = f"{type(exc).__name__}: {exc}"
            log.warning("sandbox_backend_not_loaded", entry_point=point.value, error=str(exc))


def providers() -> dict[str, BackendProvider]:
    """Every registered backend, by name."""
    _load_entry_points()
    return dict(sorted(_providers.items()))


def _available() -> str:
    return ", ".join([AUTO, *providers()])


def provider(name: str) -> BackendProvider:
    """The backend registered as `name`, or a configuration error that lists the others."""
    found = providers().get(name)
    if found is not None:
        return found
    if name in _broken:
        why = f"the backend {name!r} failed to load ({_broken[name]})"
    else:
        why = f"no backend is named {name!r}"
    raise invalid_field("MLEB_SANDBOX_BACKEND", f"{why}; available: {_available()}")


def _build(chosen: BackendProvider, settings: SandboxSettings) -> Backend:
    backend = chosen.build(settings)
    if (backend.name, backend.capabilities) != (chosen.name, chosen.capabilities):
        raise TypeError(f"the {chosen.name!r} backend differs from what its provider declares")
    return backend


def choose(settings: SandboxSettings) -> Backend:
    """Builds the backend MLEB_SANDBOX_BACKEND names."""
    if settings.backend != AUTO:
        return _build(provider(settings.backend), settings)
    *fallible, last = (provider(name) for name in AUTO_ORDER)
    for candidate in fallible:
        try:
            return _build(candidate, settings)
        except BackendUnavailable as exc:
            log.warning(
                "sandbox_backend_unavailable",
                backend=candidate.name,
                error=str(exc),
                note=f"falling back to the {last.name} backend"
                + ("" if last.capabilities.security_boundary else ", NOT a security boundary"),
            )
    return _build(last, settings)


register(docker.PROVIDER)
register(local.PROVIDER)
register(slurm.PROVIDER)
register(kubernetes.PROVIDER)
