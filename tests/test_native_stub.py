"""The hand-kept stub `_native.pyi` matches the compiled module."""

from __future__ import annotations

import ast
from pathlib import Path

import flask_rampart
from flask_rampart import _native

STUB = Path(flask_rampart.__file__).with_name("_native.pyi")


def stub_names() -> dict[str, set[str]]:
    """Top-level names of the stub, and the members of each class."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
            }
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
    return names


def public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_and_module_define_the_same_names() -> None:
    stub = stub_names()
    assert set(stub) == public(_native)
    for cls in ("Engine", "Decision", "ManualClock", "GeoDatabase"):
        assert stub[cls] == public(getattr(_native, cls)), cls
