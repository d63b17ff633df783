"""The invariants docs/architecture.md states, checked on the code: pure modules stay pure, every module is
placed, one source for each fact."""

from __future__ import annotations

import ast
import dataclasses
import re
from functools import cache
from pathlib import Path

import pytest

from entrypoint.engines import ENGINES
from entrypoint.settings import SETTINGS, Settings
from tests.support.paths import ROOT

PACKAGE = ROOT / "entrypoint"
# What a pure module may not import: processes, sockets, files, the network, the engines.
IO_MODULES = {
    "os",
    "subprocess",
    "socket",
    "ssl",
    "urllib",
    "http",
    "shutil",
    "glob",
    "tempfile",
    "signal",
    "pathlib",
    "threading",
    "huggingface_hub",
    "prometheus_client",
}
PURE_PARSERS = {"prometheus_client.parser"}  # text in, values out
NEVER = {"vllm", "sglang", "torch"}


@cache
def codemap() -> dict[str, str]:
    """module name -> "pure", "edge" or "launcher", from the codemap table of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `entrypoint/(\S+)\.py` \|.*\| (pure|edge|launcher)\b[^|]*\|$", text, re.M)
    return {f"entrypoint.{path.replace('/', '.')}".removesuffix(".__init__"): kind for path, kind in rows}


@cache
def module_files() -> dict[str, Path]:
    """Every module with code (a docstring-only __init__.py is a folder's label, not a module)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if path.name == "__init__.py" and all(isinstance(node, ast.Expr) for node in tree.body):
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def runtime_imports(path: Path, module: str) -> set[str]:
    """Absolute names of what `module` imports when it runs (not under `if TYPE_CHECKING:`)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            for child in ast.walk(node):
                if isinstance(child, ast.Import):
                    names.update(alias.name for alias in child.names)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join([*parts, base] if base else parts)
                    names.add(base)
                    names.update(f"{base}.{alias.name}" for alias in child.names)

    visit(ast.parse(path.read_text()).body)
    return names


def test_every_module_is_in_the_codemap():
    assert set(module_files()) == set(codemap())


@pytest.mark.parametrize("module", sorted(name for name, kind in codemap().items() if kind == "pure"))
def test_pure_modules_do_no_io(module):
    path = module_files()[module]
    kinds = codemap()
    imported = runtime_imports(path, module)
    edges = {name for name in imported if kinds.get(name) == "edge"}
    assert not edges, f"{module} is pure but imports {edges} at run time"
    io = {
        name
        for name in imported
        if name.split(".")[0] in IO_MODULES
        and name not in PURE_PARSERS
        and not any(name.startswith(parser) for parser in PURE_PARSERS)
    }
    assert not io, f"{module} is pure but imports {io}"
    calls = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
    ]
    assert not calls, f"{module} is pure but calls open() on line {calls[0].lineno}"


@pytest.mark.parametrize("module", sorted(name for name, kind in codemap().items() if kind != "launcher"))
def test_no_module_imports_an_engine_or_a_launcher(module):
    """Only a launcher, exec'd inside its engine's image, may import the engine; nothing imports a launcher."""
    imported = runtime_imports(module_files()[module], module)
    assert not {name for name in imported if name.split(".")[0] in NEVER}
    launchers = {name for name, kind in codemap().items() if kind == "launcher"}
    assert not imported & launchers


def test_settings_fields_are_the_table_rows():
    fields = {field.name for field in dataclasses.fields(Settings)} - {"warnings"}
    assert fields == {setting.attr for setting in SETTINGS}


def test_engine_choices_come_from_the_registry():
    (engine,) = [setting for setting in SETTINGS if setting.name == "ENGINE"]
    for name in ENGINES:
        assert engine.parse(name) == name
    with pytest.raises(ValueError, match=", ".join(ENGINES)):
        engine.parse("tgi")


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_quantization_data_are_methods_of_the_engine(engine):
    data = ENGINES[engine]
    assert "fp8" in data.fp8_methods <= data.quantization_methods
    assert data.checkpoint_quantization <= data.quantization_methods
    assert not data.checkpoint_quantization & data.fp8_methods
