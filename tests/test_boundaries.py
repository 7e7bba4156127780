"""Dependency rules of DESIGN section 2, checked on the source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ROOT / "implementations"
WRITE_TABLES = ("customers", "products", "orders", "order_lines", "price_history", "outbox")
QUERY_MODULES = [
    IMPLEMENTATIONS / "read_model" / "queries.py",
    IMPLEMENTATIONS / "cqrs_logical" / "queries.py",
    IMPLEMENTATIONS / "cqrs_physical" / "queries.py",
]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if _is_module(f"{node.module}.{alias.name}")
            )
    return found


def _is_module(name: str) -> bool:
    module = ROOT / Path(*name.split("."))
    return module.with_suffix(".py").is_file() or (module / "__init__.py").is_file()


def _local_closure(path: Path) -> set[str]:
    """Every implementations.* module `path` imports, directly or through other local modules."""
    seen, todo = set(), [path]
    while todo:
        for name in _imports(todo.pop()):
            if name.startswith("implementations.") and name not in seen:
                seen.add(name)
                module = ROOT / Path(*name.split("."))
                for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate)
    return seen


def test_query_code_never_imports_the_write_model():
    for path in QUERY_MODULES:
        leaked = {m for m in _local_closure(path) if m.startswith("implementations.write_model")}
        assert not leaked, f"{path.relative_to(ROOT)} reaches the write model through {leaked}"


def test_query_sql_reads_only_read_model_tables():
    pattern = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)", re.IGNORECASE)
    for path in QUERY_MODULES:
        tables = set(pattern.findall(path.read_text()))
        assert not tables & set(WRITE_TABLES), f"{path.name} reads {tables & set(WRITE_TABLES)}"


def test_implementations_never_import_each_other_or_the_harness():
    folders = ["crud", "cqrs_logical", "cqrs_physical"]
    for folder in folders:
        for path in (IMPLEMENTATIONS / folder).glob("*.py"):
            for name in _imports(path):
                others = [f"implementations.{f}" for f in folders if f != folder]
                assert not name.startswith(("harness", "workloads", *others)), f"{path}: {name}"
