"""Imports only run down (ARCHITECTURE rule 5), checked on the source.

    the project (arcana/: settings, urls, server assembly, error translation)
      -> the apps' controllers -> services -> repository -> models
      -> the shared core (arcana/core/), which imports no app and no project module

Every import statement counts, including those inside functions and under
``TYPE_CHECKING``: a dependency is a dependency, whenever it is resolved.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = ("users", "authn")
CORE = "arcana.core"
# Where the project assembles the apps: URL routing and the gRPC server.
ASSEMBLY = frozenset({"arcana.urls", "arcana.grpc.server"})

# An app's modules by tier, lowest first; a module may import its own tier and below.
TIERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "models",
        frozenset(
            {
                "",
                "models",
                "records",
                "errors",
                "signals",
                "migrations",
                "normal",
                "interfaces",
                "hashers",
            }
        ),
    ),
    # tasks: the mail queue, which the repository enqueues to.
    ("repository", frozenset({"repository", "tasks"})),
    ("services", frozenset({"services", "tokens", "mail", "cursors"})),
    (
        "controllers",
        frozenset(
            {
                "api",
                "grpc",
                "admin",
                "management",
                "apps",
                "authentication",
                "backends",
                "receivers",
                "schema",
            }
        ),
    ),
)
# What only controllers may use: the transports and the core's helpers for them.
TRANSPORTS = (
    "rest_framework",
    "grpc",
    "django_grpc_framework",
    "arcana.core.rest",
    "arcana.core.grpc",
    "arcana.core.grpc_compat",
    "arcana.core.throttling",
    # The internal gRPC hop (client and servicer of a boundary). Only
    # ``arcana.core.delegation`` reaches it, lazily, to build a boundary's
    # remote implementation: the one transport below the controllers
    # (ARCHITECTURE rule 5), and no app module imports it.
    "arcana.core.internal",
)
# The core module allowed to import generated protos: the internal ones only.
INTERNAL_HOP = ("arcana.core.internal", "protos.arcana.internal")
# The core's modules that services use; they must not pull a transport in.
CORE_FOR_SERVICES = ("exceptions", "cache", "lockout", "ratelimit", "principal")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports: a module, or a name's module
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports_of(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # ``from arcana.core import lockout`` imports the module arcana.core.lockout.
                name = f"{base}.{alias.name}"
                yield Import(module, name if _is_module(name) else base, node.lineno)


def _sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


ALL_IMPORTS = [item for path in _sources("arcana", *APPS) for item in _imports_of(path)]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _app_of(name: str) -> str | None:
    return next((app for app in APPS if _within(name, app)), None)


def _tier(module: str) -> int:
    """An app module's tier (index into TIERS)."""
    part = module.split(".")[1] if "." in module else ""
    for index, (_, members) in enumerate(TIERS):
        if part in members:
            return index
    raise AssertionError(
        f"{module} has no tier: add its name to TIERS in tests/test_layout.py, "
        "where it belongs (models, repository, services or controllers)"
    )


def test_the_scan_sees_the_tree() -> None:
    # Guards the guards: a scan that found nothing would pass every test below.
    modules = {item.module for item in ALL_IMPORTS}
    assert {"users.services", "authn.services", "arcana.core.lockout", "arcana.grpc.server"} <= (
        modules
    )
    edges = {(item.module, item.target) for item in ALL_IMPORTS}
    assert ("users.services", "arcana.core.lockout") in edges  # from arcana.core import lockout
    assert ("users.api.views", "rest_framework") in edges  # from rest_framework import status


def test_the_core_imports_no_app_and_nothing_of_the_project() -> None:
    wrong = [
        str(item)
        for item in ALL_IMPORTS
        if _within(item.module, CORE)
        and (
            _app_of(item.target)
            or (
                _within(item.target, "protos")
                and not (item.module == INTERNAL_HOP[0] and _within(item.target, INTERNAL_HOP[1]))
            )
            or (_within(item.target, "arcana") and not _within(item.target, CORE))
        )
    ]
    assert wrong == []


def test_users_never_imports_authn() -> None:
    # authn builds on users (credentials, the users it signs in); never the reverse.
    wrong = [
        str(item)
        for item in ALL_IMPORTS
        if _within(item.module, "users") and _within(item.target, "authn")
    ]
    assert wrong == []


def test_apps_import_the_project_only_through_the_core() -> None:
    wrong = [
        str(item)
        for item in ALL_IMPORTS
        if _app_of(item.module)
        and _within(item.target, "arcana")
        and not _within(item.target, CORE)
    ]
    assert wrong == []


def test_the_project_imports_apps_only_where_it_assembles_them() -> None:
    # And there only their controllers: URL confs and servicers.
    wrong = [
        str(item)
        for item in ALL_IMPORTS
        if _within(item.module, "arcana")
        and _app_of(item.target)
        and (item.module not in ASSEMBLY or item.target.split(".")[1:2] not in (["api"], ["grpc"]))
    ]
    assert wrong == []


@pytest.mark.parametrize("app", APPS)
def test_an_apps_admin_imports_no_other_app(app: str) -> None:
    wrong = [
        str(item)
        for item in ALL_IMPORTS
        if item.module == f"{app}.admin" and _app_of(item.target) not in (None, app)
    ]
    assert wrong == []


def _binds_boundaries(item: Import) -> bool:
    """Wiring, not layering, in two places, both imported lazily (at start-up):

    - an app's package root binds its boundaries (``arcana.core.delegation``):
      its factories import the local services and repository;
    - ``<app>.signals`` defines the app's signals (the model sends them, so it
      sits with the models) and holds the receivers of Django's model signals
      that invalidate the repository's cache, connected in ``AppConfig.ready``.
    """
    app = _app_of(item.module)
    if app is None or not item.target.startswith(f"{app}."):
        return False
    target = item.target.split(".")[1]
    if item.module == app:
        return target in {"services", "repository"}
    return item.module == f"{app}.signals" and target == "repository"


def test_app_imports_run_down_the_tiers() -> None:
    wrong = [
        f"{item} ({TIERS[_tier(item.module)][0]} -> {TIERS[_tier(item.target)][0]})"
        for item in ALL_IMPORTS
        if _app_of(item.module)
        and _app_of(item.target)
        and _tier(item.target) > _tier(item.module)
        and not _binds_boundaries(item)
    ]
    assert wrong == []


def test_below_the_controllers_nothing_imports_a_transport() -> None:
    controllers = len(TIERS) - 1
    lower = [
        item
        for item in ALL_IMPORTS
        if (_app_of(item.module) and _tier(item.module) < controllers)
        or any(_within(item.module, f"{CORE}.{name}") for name in CORE_FOR_SERVICES)
    ]
    assert lower  # the filter matched something
    wrong = [
        str(item)
        for item in lower
        if any(_within(item.target, transport) for transport in TRANSPORTS)
    ]
    assert wrong == []


# bench/ only benchmarks (issue 13): what a test needs to start the service and
# talk to it is in tests/support/, which bench/ uses too. A test imports bench
# only to test a benchmark module itself: tests/test_bench_*.py, and these.
BENCH_UNDER_TEST = {
    "tests.test_capacity": {"bench.capacity"},
    "tests.test_k8s": {"bench.capacity"},  # the overlays' sizing follows docs/CAPACITY.md
    "tests.live.test_capacity_run": {"bench.capacity"},
    "tests.live.test_load": {"bench.mixed"},
    "tests.observe.test_dashboard": {"bench.dashboard"},
    "tests.users.test_list_scale": {"bench.seed"},
}


def _imports_between(source: str, target: str) -> list[Import]:
    """Every import in the package ``source`` of ``target`` or a module in it."""
    return [
        item
        for path in _sources(source)
        for item in _imports_of(path)
        if _within(item.target, target)
    ]


def test_tests_import_bench_only_to_test_a_benchmark() -> None:
    imports = _imports_between("tests", "bench")
    assert any(item.module.startswith("tests.test_bench_") for item in imports)  # the scan works
    wrong = [
        str(item)
        for item in imports
        if not item.module.startswith("tests.test_bench_")
        and item.target not in BENCH_UNDER_TEST.get(item.module, set())
    ]
    assert wrong == []


def test_bench_uses_only_the_shared_support_of_the_tests() -> None:
    imports = _imports_between("bench", "tests")
    assert imports  # bench starts its servers with tests.support
    assert [str(item) for item in imports if not _within(item.target, "tests.support")] == []
