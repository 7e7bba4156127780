"""Implementations by name. Each entry is a package whose `create(config)` builds one."""

from __future__ import annotations

import importlib

from implementations.interface import Config, Implementation

PACKAGES = {
    "crud": "implementations.crud",
    "cqrs-logical": "implementations.cqrs_logical",
    "cqrs-physical": "implementations.cqrs_physical",
}


def names() -> list[str]:
    return list(PACKAGES)


def check(name: str) -> str:
    """`name`, or ValueError naming the implementations there are."""
    if name not in PACKAGES:
        raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(PACKAGES)}")
    return name


def create(name: str, config: Config) -> Implementation:
    return importlib.import_module(PACKAGES[check(name)]).create(config)
