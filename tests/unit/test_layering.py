"""The layering rules of engine/ and dashboard/, checked on every import (top level or inside a function).

Layers, from the outside in:
- front ends: engine.cli (with engine.management, its manage.py entry), engine.api, engine.admin and
  dashboard. They reach the engine only through engine.services and the shared modules in FRONT_END_MAY
  (errors, models, events, progress, conf, humanize, goduration), and never through another front end.
- services: engine.services, plus engine.checks and engine.apps (the system checks probe the host the
  way services do). They may import anything below them, never a front end.
- shared modules: engine.errors, models, events, progress, conf, humanize, goduration, locks, undo. Never a
  service or a front end; locks and undo are the services' tools, so front ends do not take locks themselves.
- mechanisms: engine.runtime, store, net, registry, image, dockerfile. They take paths, IDs and plain
  values: never django (so never models, events, conf or locks), never a service, never a front end.
  engine.dockerfile is pure: besides the above, not engine.runtime or engine.net either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FRONT_ENDS = {
    "engine.cli": "cli",
    "engine.management": "cli",
    "engine.api": "api",
    "engine.admin": "admin",
    "dashboard": "dashboard",
}
SERVICES = ("engine.services", "engine.checks", "engine.apps")
SHARED = (
    "engine.errors",
    "engine.models",
    "engine.events",
    "engine.progress",
    "engine.conf",
    "engine.humanize",
    "engine.goduration",
    "engine.locks",
    "engine.undo",
)
FRONT_END_MAY = (
    "engine.services",
    "engine.errors",
    "engine.models",
    "engine.events",
    "engine.progress",
    "engine.conf",
    "engine.humanize",
    "engine.goduration",
)
MECHANISMS = (
    "engine.runtime",
    "engine.store",
    "engine.net",
    "engine.registry",
    "engine.image",
    "engine.dockerfile",
)
MECHANISM_MAY = (
    "engine.errors",
    "engine.progress",
    "engine.humanize",
    "engine.goduration",
    "engine.undo",
    *MECHANISMS,
)
DOCKERFILE_MAY_NOT = ("engine.runtime", "engine.net")

# (importing module, imported module) -> why it is allowed. Keep this short: fix the code instead.
_SERVE_API = ("engine.cli.system_commands", "engine.api.server")
_CONF_RESERVE = ("engine.conf", "engine.store.diskspace")
ALLOWED = {
    _SERVE_API: "`berth serve-api` runs the API front end in this process",
    _CONF_RESERVE: "conf.disk_reserve() builds the configured free-space Reserve, a plain value the services "
    "hand to the store's writers (the store cannot read settings)",
}


def _under(name: str, packages: tuple[str, ...] | list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file; `from a import b` yields a.b when b is a module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                # `from engine import conf` imports the module engine.conf; `from engine.x import f` imports engine.x.
                yield node.lineno, candidate if _is_module(candidate) else source


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _front_end(name: str) -> str | None:
    for package, group in FRONT_ENDS.items():
        if _under(name, [package]):
            return group
    return None


def _violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None if it may."""
    if not _under(imported, ["engine", "dashboard"]) or imported == "engine":
        return None
    group = _front_end(importer)
    if group is not None:
        if _front_end(imported) == group or _under(imported, FRONT_END_MAY):
            return None
        return "a front end reaches the engine only through engine.services and the shared modules"
    if _under(importer, SERVICES):
        return "services never import a front end" if _front_end(imported) else None
    if _under(importer, SHARED):
        if _front_end(imported) or _under(imported, SERVICES) or _under(imported, MECHANISMS):
            return "shared modules import no front end, service or mechanism"
        return None
    if _under(importer, MECHANISMS):
        if not _under(imported, MECHANISM_MAY):
            return "mechanisms import no service, front end, model or django-backed module"
        if _under(importer, ["engine.dockerfile"]) and _under(imported, DOCKERFILE_MAY_NOT):
            return "engine.dockerfile is pure: no runtime or net"
        return None
    return f"{importer} is in no layer: add it to tests/unit/test_layering.py"


def _sources() -> Iterator[Path]:
    for top in ("engine", "dashboard"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_every_import_follows_the_layering_rules() -> None:
    problems = []
    for path in _sources():
        importer = _module_name(path)
        for line, imported in _imports(path):
            why = _violation(importer, imported)
            if why and (importer, imported) not in ALLOWED:
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {imported}: {why}")
    assert not problems, "\n".join(problems)


def test_mechanisms_never_import_django() -> None:
    # A mechanism takes paths and plain values; django in one means a model or a setting slipped in.
    problems = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in _sources()
        if _under(_module_name(path), MECHANISMS)
        for line, name in _imports(path)
        if _under(name, ["django"])
    ]
    assert not problems, "\n".join(problems)


def test_every_allowed_exception_is_still_needed() -> None:
    # An entry whose import is gone would silently allow it again later.
    found = {(_module_name(path), name) for path in _sources() for _, name in _imports(path)}
    assert set(ALLOWED) <= found, set(ALLOWED) - found


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    assert _violation("dashboard.views", "engine.runtime.runc")
    assert _violation("engine.runtime.runc", "engine.services.bundle")
    assert _violation("engine.dockerfile.parser", "engine.runtime.spec")
    assert _violation("engine.store.layers", "engine.models")
    assert _violation("engine.cli.main", "engine.locks")
    assert _violation("engine.api.images", "engine.cli.render")
    assert _violation("dashboard.views", "engine.services.refs") is None
    tree = ast.parse("def f():\n    from engine.runtime import runc\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "engine.runtime" for n in ast.walk(tree))
