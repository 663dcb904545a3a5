"""What may cross the boundaries between the layers and between the apps.

A layered deployment will put a gRPC hop at each boundary (controller ->
service, service -> repository, authn -> users), so nothing may cross one that
a hop could not carry: no model, no queryset, no open transaction, no lock.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, ``from a import b`` counted as ``a.b`` too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


# --- imports -------------------------------------------------------------------------

USERS_INTERNALS = ("users.repository", "users.models")


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT) for p in (ROOT / "authn").rglob("*.py")), ids=str
)
def test_authn_reaches_users_only_through_its_services(path: Path) -> None:
    reached = {
        module for module in imported_modules(ROOT / path) if module.startswith(USERS_INTERNALS)
    }
    if path == Path("authn/backends.py"):
        # Django's backend contract: authenticate() returns a model (see its docstring).
        assert reached == {
            "users.repository",
            "users.models",
            "users.models.User",
        }
    else:
        assert reached == set()


CONTROLLERS = [
    "users/api/views.py",
    "users/grpc/services.py",
    "authn/api/views.py",
    "authn/grpc/services.py",
]


@pytest.mark.parametrize("path", CONTROLLERS)
def test_controllers_reach_no_repository_and_no_model(path: str) -> None:
    reached = {
        module
        for module in imported_modules(ROOT / path)
        if module.endswith(("repository", "models"))
        or ".repository." in module
        or ".models." in module
    }
    assert reached == set()
