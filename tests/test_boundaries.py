"""Dependency rules of DESIGN section 2, checked on the source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from implementations import registry

ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ROOT / "implementations"
WRITE_TABLES = ("customers", "products", "orders", "order_lines", "price_history", "outbox")
# the query code of every architecture whose queries read read models, and the shared one
QUERY_MODULES = [IMPLEMENTATIONS / "read_model" / "queries.py"] + [
    a.folder / "queries.py"
    for a in registry.architectures().values()
    if a.read_model != "write tables"
]


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    found = set()
    package = _module_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found.add(module)
            found.update(
                f"{module}.{alias.name}"
                for alias in node.names
                if _is_module(f"{module}.{alias.name}")
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
    folders = [a.folder.name for a in registry.architectures().values()]
    for folder in folders:
        for path in (IMPLEMENTATIONS / folder).glob("*.py"):
            for name in _imports(path):
                others = [f"implementations.{f}" for f in folders if f != folder]
                # a package or a module in it: implementations.crud is not implementations.crud_x
                assert not any(
                    name == other or name.startswith(f"{other}.")
                    for other in ("harness", "workloads", *others)
                ), f"{path}: {name}"


def test_no_architecture_is_named_outside_its_folder():
    """The harness, the workloads and the benchmarks take architectures from the registry: an
    architecture's name (or its folder's) appears in none of their files."""
    words = {a.name for a in registry.architectures().values()}
    words |= {a.folder.name for a in registry.architectures().values()}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(words))) + r")(?![\w-])")
    for folder in ("harness", "workloads", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
                found = pattern.findall(path.read_text())
                assert not found, f"{path.relative_to(ROOT)} names {sorted(set(found))}"
