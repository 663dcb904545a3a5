"""The users app's two boundaries, as typed interfaces.

``UserServiceInterface`` is what controllers (REST, gRPC), the admin's
actions and other apps (authn) call; ``UserRepositoryInterface`` is what the
services call for data. Arguments are keyword-only primitives and records,
results are frozen records or primitives (``users.records``): everything a
gRPC hop could carry, and nothing else (no model, queryset, lock or open
transaction; ``tests/test_boundaries.py`` checks the annotations and, at run
time, the values).

Why Protocols matched by *modules*: the local implementation of each
interface is the module of functions itself (``users.services``,
``users.repository``), and ``users.service`` / ``users.repo`` are those
module objects in monolithic mode. mypy checks a module against a Protocol
member by member (names, keyword names, types, defaults present, results),
so ``users._local_service`` returning the module *is* the static proof that
the module satisfies the interface; a missing function or a function that
returns a model fails ``mypy .``. And a module needs no wrapper: a call
through the interface is the same plain function call as before, with no
delegating class whose every signature would be a third copy to keep in
step. A remote implementation (a gRPC client class) will satisfy the same
Protocols.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from users.records import Actor, UserChanges, UserCredentials, UserPage, UserRecord


class UserServiceInterface(Protocol):
    """The rules for users (``users.services``)."""

    def password_check(self, *, password: str, name: str = "", email: str = "") -> None: ...

    def user_create(
        self,
        *,
        name: str,
        email: str,
        password: str,
        roles: Sequence[str] | None = None,
        sync_status: str | None = None,
        by: str | None = None,
    ) -> UserRecord: ...

    def user_create_by(
        self,
        *,
        actor: Actor,
        name: str,
        email: str,
        password: str,
        roles: Sequence[str] | None = None,
    ) -> UserRecord: ...

    def user_get(self, *, actor: Actor, user_id: str) -> UserRecord: ...

    def user_list(
        self,
        *,
        actor: Actor,
        page: int | None = None,
        size: int = 10,
        sync_status: str | None = None,
        search: str | None = None,
        is_active: bool | None = None,
        cursor: str | None = None,
    ) -> UserPage: ...

    def user_update(
        self,
        *,
        actor: Actor,
        user_id: str,
        client: str,
        name: str | None = None,
        email: str | None = None,
        current_password: str | None = None,
        roles: Sequence[str] | None = None,
        is_active: bool | None = None,
        sync_status: str | None = None,
    ) -> UserRecord: ...

    def user_delete(self, *, actor: Actor, user_id: str) -> None: ...

    def user_set_password(
        self, *, user_id: str, password: str, keep_session: str | None = None
    ) -> None: ...

    def users_mark_pending_sync(self, *, user_ids: Iterable[str]) -> list[str]: ...

    def users_deactivate(self, *, user_ids: Iterable[str]) -> list[str]: ...

    # For authn: the only way it reaches users.
    def user_record(self, *, user_id: str) -> UserRecord: ...

    def user_authenticate(self, *, email: str, password: str) -> UserRecord | None: ...

    def user_password_matches(self, *, user_id: str, password: str) -> bool: ...

    def user_password_confirm(self, *, user: UserRecord, password: str, client: str) -> None: ...

    def user_login_record(self, *, user_id: str) -> None: ...

    # Account mails: password reset and email verification.
    def password_reset_request(self, *, email: str) -> None: ...

    def password_reset_confirm(self, *, uid: str, token: str, new_password: str) -> None: ...

    def email_verify(self, *, uid: str, token: str) -> UserRecord: ...

    def email_verification_resend(self, *, email: str) -> None: ...

    # For the mail worker (users.tasks), which runs where the data is.
    def account_mail_send(self, *, kind: str, email: str = "", user_id: str = "") -> bool: ...


class UserRepositoryInterface(Protocol):
    """Data access for users (``users.repository``). Each call owns its
    transaction and row locks; ``UserCredentials`` (with the password hash)
    crosses this boundary and no other."""

    def user_get(self, *, user_id: str) -> UserRecord: ...

    def user_credentials(self, *, email: str) -> UserCredentials | None: ...

    def user_credentials_of(self, *, user_id: str) -> UserCredentials: ...

    def user_password_hash(self, *, user_id: str) -> str: ...

    def user_list(
        self,
        *,
        page: int,
        size: int,
        sync_status: str | None,
        search: str | None,
        is_active: bool | None = None,
    ) -> UserPage: ...

    def user_list_after(
        self,
        *,
        size: int,
        after_created_at: datetime | None,
        after_id: str | None,
        sync_status: str | None,
        search: str | None,
        is_active: bool | None,
    ) -> UserPage: ...

    def user_insert(
        self,
        *,
        name: str,
        email: str,
        password_hash: str,
        roles: Iterable[str],
        sync_status: str | None = None,
        by: str | None = None,
    ) -> UserRecord: ...

    def user_update_fields(
        self,
        *,
        user_id: str,
        changes: UserChanges,
        roles: Sequence[str] | None = None,
        by: str | None = None,
    ) -> UserRecord: ...

    def user_set_password_hash(
        self, *, user_id: str, password_hash: str, keep_session: str | None = None
    ) -> None: ...

    def user_password_hash_upgrade(self, *, user_id: str, old_hash: str, new_hash: str) -> bool: ...

    def user_password_hash_replace(self, *, user_id: str, old_hash: str, new_hash: str) -> bool: ...

    def user_email_confirm(self, *, user_id: str, email: str) -> UserRecord: ...

    def mail_enqueue(self, *, kind: str, email: str = "", user_id: str = "") -> None: ...

    def user_login_record(self, *, user_id: str) -> None: ...

    def user_delete(self, *, user_id: str, by: str | None = None) -> None: ...

    def users_update_many(
        self,
        *,
        user_ids: Iterable[str],
        sync_status: str | None = None,
        is_active: bool | None = None,
    ) -> list[str]: ...
