"""A registered model's aliases, read and moved: what an environment's alias (`@prod`) names
is how the registry tells which version serves there."""

from __future__ import annotations

from core.registry.mlflow import Registry


def aliases_of(registry: Registry, model: str) -> dict[str, int]:
    """Every alias of `model` and the version it names. NotFound when the registry has no
    such model, RegistryError when it fails."""
    with registry.guarded(f"reading the aliases of {model}"):
        found = registry.client.get_registered_model(model).aliases or {}
    return {str(alias): int(version) for alias, version in found.items()}


def move_alias(registry: Registry, model: str, alias: str, version: int) -> None:
    """Make `@alias` of `model` name `version`. NotFound when the registry has no such model
    or version, RegistryError when it refuses or fails."""
    with registry.guarded(f"moving @{alias} of {model} to v{version}"):
        registry.client.get_model_version(model, str(version))
        registry.client.set_registered_model_alias(model, alias, str(version))
