"""The package's layers, read from the source: no import circle, no import of a higher layer.

Every import counts, also the ones inside functions (kept lazy for start-up time): a lazy
import of a higher layer is still a dependency on it. ARCHITECTURE.md explains the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kws"

# Lowest first; a module may import its own package or any package listed before it.
LAYERS = (
    "kws",  # the package root: version and where templates and boards live
    "kws.errors",
    "kws.config",
    "kws.cluster",  # Ray tasks and result logs (knows nothing about models)
    "kws.report",  # metrics, plots, the model card
    "kws.csource",  # rendering templates, C arrays, compiler flags, QEMU machines
    "kws.data",
    "kws.features",
    "kws.model",
    "kws.export",  # the bundle: written by export, read by every later layer
    "kws.native",
    "kws.recognize",
    "kws.pio",
    "kws.boards",
    "kws.codegen",
    "kws.emulate",
    "kws.evaluation",  # the backend registry, clip accuracy, cross-validation
    "kws.streams",
    "kws.sweep",
    "kws.commands",
    "kws.cli",
    "kws.__main__",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """kws modules that `path` imports anywhere in its body."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "kws":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "kws"}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; kws uses absolute imports only")
    return out


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return LAYERS.index(name)
    raise AssertionError(f"{module}: in no layer; add its package to LAYERS (and "
                         "ARCHITECTURE.md)")


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {t for t in imports(p, known) if t != m} for m, p in mods.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_no_module_imports_a_higher_layer():
    upward = []
    for m, targets in graph().items():
        for t in targets:
            if layer_of(t) > layer_of(m):
                upward.append(f"{m} -> {t} ({LAYERS[layer_of(m)]} is below "
                              f"{LAYERS[layer_of(t)]})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (import circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    circles = strongly_connected(graph())
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_checks_catch_a_circle_and_an_upward_import():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]]
    assert layer_of("kws.data.audio") < layer_of("kws.features.reference")
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("elsewhere.module")


def test_backends_are_reached_only_through_the_registry():
    """No `backend == "<name>"` branch outside the two registries: kws.evaluation.backends
    (running a bundle to score it) and kws.codegen.firmware_models (how the firmware runs
    the model)."""
    names = ("keras", "tflite", "tflm", "native", "qemu")
    offenders = []
    for m, path in modules().items():
        if m.startswith("kws.evaluation.backend"):
            continue
        text = path.read_text()
        for name in names:
            for pattern in (f'backend == "{name}"', f'backend != "{name}"'):
                if pattern in text:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}: {pattern}")
    assert not offenders, "\n".join(offenders)
