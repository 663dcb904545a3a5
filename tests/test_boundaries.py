"""What may cross the boundaries between the layers and between the apps.

A layered deployment will put a gRPC hop at each boundary (controller ->
service, service -> repository, authn -> users), so nothing may cross one that
a hop could not carry: no model, no queryset, no open transaction, no lock.
"""

import ast
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.db import connection
from django.db.models import Manager, Model, QuerySet
from rest_framework.test import APIClient

import authn
import users
from arcana.core import delegation
from arcana.core.delegation import NotReachable
from arcana.core.internal import RemoteBoundary
from authn import repository as authn_repository
from authn import services as authn_services
from authn.interfaces import AuthRepositoryInterface, AuthServiceInterface
from authn.records import Authenticated, Session, TokenPair
from tests.conftest import client_for
from tests.internal.conftest import deploy_as
from users import repository as users_repository
from users import services as users_services
from users.interfaces import UserRepositoryInterface, UserServiceInterface
from users.models import User
from users.records import Actor, UserChanges, UserCredentials, UserPage, UserRecord

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
    "users/grpc/servicers.py",
    "authn/api/views.py",
    "authn/grpc/servicers.py",
]


@pytest.mark.parametrize("path", CONTROLLERS)
def test_controllers_reach_no_repository_and_no_model(path: str) -> None:
    """Nor the service modules: they call through the boundary (``users.service``)."""
    assert not imported_modules(ROOT / path) & {"users.services", "authn.services"}
    reached = {
        module
        for module in imported_modules(ROOT / path)
        if module.endswith(("repository", "models"))
        or ".repository." in module
        or ".models." in module
    }
    assert reached == set()


# --- the interfaces -----------------------------------------------------------------------

BOUNDARIES = [
    ("users.service", UserServiceInterface, users_services),
    ("users.repo", UserRepositoryInterface, users_repository),
    ("authn.service", AuthServiceInterface, authn_services),
    ("authn.repo", AuthRepositoryInterface, authn_repository),
]
SERVICE_INTERFACES = (UserServiceInterface, AuthServiceInterface)


def members(interface: type) -> list[str]:
    return sorted(
        name for name, value in vars(interface).items() if callable(value) and name[0] != "_"
    )


@pytest.mark.parametrize(("name", "interface", "module"), BOUNDARIES, ids=lambda v: str(v))
def test_monolithic_boundaries_are_the_modules_themselves(
    name: str, interface: type, module: ModuleType
) -> None:
    """No wrapper, no serialisation: a call through the boundary is the plain
    function call it always was."""
    app, attribute = name.split(".")
    assert getattr(importlib.import_module(app), attribute) is module
    assert members(interface)


@pytest.mark.parametrize(("name", "interface", "module"), BOUNDARIES, ids=lambda v: str(v))
def test_local_implementations_match_their_interfaces(
    name: str, interface: type, module: ModuleType
) -> None:
    """mypy checks this statically (users/__init__.py, authn/__init__.py);
    here the defaults are compared too, at run time."""
    for member in members(interface):
        declared = inspect.signature(getattr(interface, member))
        without_self = declared.replace(parameters=list(declared.parameters.values())[1:])
        assert inspect.signature(getattr(module, member)) == without_self, member
        kinds = {p.kind for p in without_self.parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, f"{member}: keyword-only arguments"


def leaf_types(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    if not args:
        return {annotation}
    found = {typing.get_origin(annotation)}
    for arg in args:
        found |= leaf_types(arg)
    return found


PLAIN = {str, int, bool, type(None), datetime}
RECORDS = {Actor, UserRecord, UserPage, UserChanges, TokenPair, Authenticated, Session}
CONTAINERS = {Sequence, Iterable, list, tuple, types.UnionType, typing.Union}


@pytest.mark.parametrize(("name", "interface", "module"), BOUNDARIES, ids=lambda v: str(v))
def test_boundaries_speak_records_and_primitives(
    name: str, interface: type, module: ModuleType
) -> None:
    allowed = PLAIN | RECORDS | CONTAINERS
    if interface not in SERVICE_INTERFACES:
        allowed |= {UserCredentials}  # the hash crosses service <-> repository, no further
    for member in members(interface):
        hints = typing.get_type_hints(getattr(module, member))
        used = set().union(*(leaf_types(hint) for hint in hints.values()))
        assert used <= allowed, f"{name}.{member} uses {used - allowed}"
        assert not any(
            isinstance(kind, type) and issubclass(kind, (Model, QuerySet)) for kind in used
        )


@pytest.mark.parametrize("module", [users_services, authn_services], ids=lambda m: m.__name__)
def test_services_open_no_transaction(module: ModuleType) -> None:
    """``@transaction.atomic`` (a ContextDecorator) leaves ``__wrapped__``."""
    functions = [value for value in vars(module).values() if inspect.isfunction(value)]
    assert functions
    assert [f.__name__ for f in functions if hasattr(f, "__wrapped__")] == []


def test_a_tier_cannot_reach_a_boundary_two_tiers_down(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    deploy_as(settings, "controller", service_targets=("10.0.0.1:7000",))
    for app in (users, authn):
        monkeypatch.delattr(app, "repo")
        monkeypatch.delattr(app, "service")
        with pytest.raises(NotReachable, match="repository tier, which the controller tier"):
            app.repo  # noqa: B018
        app.bind()  # start-up binds what this tier reaches ...
        delegation.connect()
        assert "repo" not in vars(app)  # ... and leaves the rest to fail loudly on use
        assert isinstance(vars(app)["service"], RemoteBoundary)
        vars(app)["service"].close()
    with pytest.raises(AttributeError):
        users.no_such_boundary  # noqa: B018


# --- at run time: what actually crosses, and in which transaction state -------------------


class Spy:
    """Stands in front of one boundary and records what would not survive a
    hop: a model or queryset among the arguments or results, a password hash
    handed to a controller, or a transaction open at the call."""

    def __init__(self, name: str, target: object, baseline: int, problems: list[str]) -> None:
        self._name, self._target, self._baseline = name, target, baseline
        self._problems, self.called = problems, set[str]()

    def __getattr__(self, member: str) -> Any:
        function = getattr(self._target, member)

        def call(*args: Any, **kwargs: Any) -> Any:
            where = f"{self._name}.{member}"
            self.called.add(member)
            if args:
                self._problems.append(f"{where}: positional arguments")
            if len(connection.atomic_blocks) != self._baseline:
                self._problems.append(f"{where}: called inside a transaction")
            self._inspect(where, kwargs)
            result = function(*args, **kwargs)
            self._inspect(f"{where} ->", result)
            return result

        return call

    def _inspect(self, where: str, value: Any) -> None:
        if isinstance(value, (Model, QuerySet, Manager)):
            self._problems.append(f"{where}: {type(value).__name__}")
        elif isinstance(value, UserCredentials) and self._name.endswith(".service"):
            self._problems.append(f"{where}: a password hash")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for item in dataclasses.fields(value):
                self._inspect(where, getattr(value, item.name))
        elif isinstance(value, dict):
            for item in value.values():
                self._inspect(where, item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                self._inspect(where, item)


@pytest.mark.django_db
def test_no_model_queryset_hash_or_transaction_crosses_a_boundary(
    monkeypatch: pytest.MonkeyPatch,
    admin_user: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    problems: list[str] = []
    baseline = len(connection.atomic_blocks)
    spies = {}
    for name, _, module in BOUNDARIES:
        app, attribute = name.split(".")
        spies[name] = Spy(name, module, baseline, problems)
        monkeypatch.setattr(importlib.import_module(app), attribute, spies[name])

    anon, strong, newer = APIClient(), "a long and unusual passphrase 42", "another passphrase 77"
    body = {"name": "Bo Boundary", "email": "bo@example.com", "password": strong}
    registered = anon.post("/api/v1/auth/register", body, format="json").json()
    login = {"email": "bo@example.com", "password": strong}
    pair = anon.post("/api/v1/auth/login", login, format="json").json()
    me = client_for(token=pair["access"])
    bo = registered["user"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [
            anon.post("/api/v1/auth/refresh", {"refresh": registered["refresh"]}, format="json"),
            me.get("/api/v1/auth/me"),
            me.patch("/api/v1/auth/me", {"name": "Bo B."}, format="json"),
            me.patch(
                f"/api/v1/users/{bo}",
                {"email": "bo.b@example.com", "current_password": strong},
                format="json",
            ),
            me.post(
                "/api/v1/auth/password",
                {"current_password": strong, "new_password": newer},
                format="json",
            ),
            me.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, format="json"),
        ]
        admin = client_for(admin_user)
        created = admin.post(
            "/api/v1/users",
            {"name": "Cy", "email": "cy@example.com", "password": strong},
            format="json",
        )
        cy, ada = created.json()["id"], str(admin_user.pk)
        statuses += [
            created,
            admin.get("/api/v1/users?page=0&size=5"),
            admin.patch(f"/api/v1/users/{cy}", {"roles": ["admin", "user"]}, format="json"),
            admin.patch(f"/api/v1/users/{cy}", {"is_active": False}, format="json"),
            admin.patch(f"/api/v1/users/{ada}", {"roles": ["user"]}, format="json"),
            admin.delete(f"/api/v1/users/{cy}"),
            admin.post("/api/v1/auth/logout-all"),
        ]
    assert [response.status_code for response in statuses] == [
        200, 200, 200, 200, 204, 204, 201, 200, 200, 200, 400, 204, 204,
    ]  # fmt: skip
    assert statuses[-3].json()["code"] == "last_admin"
    assert problems == []
    assert spies["users.repo"].called >= {
        "user_insert",
        "user_credentials",
        "user_update_fields",
        "user_password_hash",
        "user_set_password_hash",
        "user_delete",
        "user_list",
    }
    assert spies["users.service"].called >= {"user_authenticate", "user_record", "user_create"}
    assert spies["authn.service"].called >= {
        "auth_register",
        "password_change",
        "user_sessions_end",
    }
    assert spies["authn.repo"].called >= {"refresh_token_rotate", "refresh_tokens_revoke_all"}
