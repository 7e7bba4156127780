"""Implementations by name. Each entry is a package whose `create(config)` builds one."""

from __future__ import annotations

import importlib

from implementations.interface import Config, Implementation

PACKAGES = {
    "crud": "implementations.crud",
    "cqrs-logical": "implementations.cqrs_logical",
}


def names() -> list[str]:
    return list(PACKAGES)


def create(name: str, config: Config) -> Implementation:
    try:
        package = PACKAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown implementation {name!r}; choose from {', '.join(PACKAGES)}"
        ) from None
    return importlib.import_module(package).create(config)
