"""The service -> repository hop, end to end: the services run here, their
repositories answer from a real internal gRPC server on loopback."""

import time
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
import pytest
from django.core.exceptions import ImproperlyConfigured

import users
from arcana.core.context import call_context
from arcana.core.exceptions import InvalidInput, Throttled, Unavailable
from arcana.core.internal import (
    RemoteBoundary,
    RemoteCallFailed,
    Replicas,
    add_boundary_servicer,
    channel_credentials,
    server_credentials,
)
from arcana.core.wire import WireError
from authn import services as auth_services
from authn.errors import TokenInvalid
from authn.interfaces import AuthRepositoryInterface
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc
from tests.grpc.conftest import Pki
from tests.internal.conftest import USER_READS, Hop, live_db, remote, start_hop
from tests.support.servers import free_port
from users import services
from users.errors import EmailTaken, LastAdmin, UserNotFound
from users.interfaces import UserRepositoryInterface
from users.records import Actor, UserRecord

pytestmark = live_db

STRONG = "a long and unusual passphrase 42"


def as_actor(record: UserRecord) -> Actor:
    return Actor(id=record.id, roles=record.roles, is_superuser=record.is_superuser)


def test_users_are_created_read_listed_and_updated_across_the_hop(across: Hop) -> None:
    admin = services.user_create(
        name="Ada", email="ada@example.com", password=STRONG, roles=["admin"]
    )
    bob = services.user_create(name="Bob", email="Bob@Example.com", password=STRONG)
    assert isinstance(bob, UserRecord)
    assert bob.email == "bob@example.com"
    assert bob.created_at.tzinfo is not None

    fetched = services.user_get(actor=as_actor(admin), user_id=bob.id)
    assert fetched == bob
    page = services.user_list(actor=as_actor(admin), page=0, size=10)
    assert {record.id for record in page.users} == {admin.id, bob.id}
    assert page.total == 2

    renamed = services.user_update(
        actor=as_actor(admin), user_id=bob.id, client="test", name="Robert"
    )
    assert renamed.name == "Robert"
    assert renamed.updated_at >= bob.updated_at
    assert {"user_insert", "user_get", "user_list", "user_update_fields"} <= set(across.methods())


def test_domain_errors_come_back_as_the_same_classes(across: Hop) -> None:
    admin = services.user_create(
        name="Ada", email="ada@example.com", password=STRONG, roles=["admin"]
    )
    bob = services.user_create(name="Bob", email="bob@example.com", password=STRONG)
    with pytest.raises(EmailTaken) as taken:
        services.user_update(
            actor=as_actor(admin), user_id=bob.id, client="test", email="ADA@example.com"
        )
    assert (taken.value.code, taken.value.kind) == ("email_taken", "conflict")
    assert taken.value.message == EmailTaken.default_message
    with pytest.raises(EmailTaken):
        services.user_create(name="Dup", email="bob@example.com", password=STRONG)

    with pytest.raises(LastAdmin) as last:
        services.user_update(actor=as_actor(admin), user_id=admin.id, client="t", roles=["user"])
    assert last.value.code == "last_admin"

    with pytest.raises(UserNotFound):
        users.repo.user_get(user_id="00000000-0000-0000-0000-000000000000")
    assert across.methods().count("user_update_fields") == 2


def test_credentials_and_password_hashes_cross_to_the_services(across: Hop) -> None:
    bob = services.user_create(name="Bob", email="bob@example.com", password=STRONG)
    assert services.user_authenticate(email="bob@example.com", password=STRONG) == bob
    assert services.user_authenticate(email="bob@example.com", password="wrong") is None
    assert services.user_password_matches(user_id=bob.id, password=STRONG)

    services.user_set_password(user_id=bob.id, password="another long passphrase 77")
    assert services.user_authenticate(email="bob@example.com", password=STRONG) is None
    assert services.user_authenticate(
        email="bob@example.com", password="another long passphrase 77"
    )
    assert {"user_credentials", "user_password_hash", "user_set_password_hash"} <= set(
        across.methods()
    )


def test_refresh_tokens_are_recorded_rotated_and_revoked_across_the_hop(across: Hop) -> None:
    pair = auth_services.auth_register(name="Cy", email="cy@example.com", password=STRONG)
    rotated = auth_services.auth_refresh(refresh=pair.refresh)
    assert rotated.refresh != pair.refresh
    with pytest.raises(TokenInvalid):  # reuse: the family is revoked
        auth_services.auth_refresh(refresh=pair.refresh)
    with pytest.raises(TokenInvalid):
        auth_services.auth_refresh(refresh=rotated.refresh)

    again = auth_services.auth_login(email="cy@example.com", password=STRONG, client="t")
    assert auth_services.auth_logout_all(actor=as_actor(again.user)) >= 1
    with pytest.raises(TokenInvalid):
        auth_services.auth_refresh(refresh=again.refresh)
    methods = across.methods()
    assert {
        "refresh_token_record",
        "refresh_token_rotate",
        "refresh_token_family_revoke",
        "refresh_tokens_revoke_all",
    } <= set(methods)


# --- a small boundary of its own, for what the real ones never raise ----------------


class Probe(Protocol):
    def probe_read(self, *, delay: float = 0.0) -> str: ...

    def probe_write(self, *, when: datetime, tags: tuple[str, ...]) -> list[str]: ...

    def probe_invalid(self) -> None: ...

    def probe_throttled(self) -> None: ...


class ProbeImpl:
    def probe_read(self, *, delay: float = 0.0) -> str:
        time.sleep(delay)
        return "read"

    def probe_write(self, *, when: datetime, tags: tuple[str, ...]) -> list[str]:
        assert when.tzinfo is not None
        assert isinstance(tags, tuple)
        return [when.isoformat(), *tags]

    def probe_invalid(self) -> None:
        raise InvalidInput({"email": ["Enter a valid email address."], "name": ["Too long."]})

    def probe_throttled(self) -> None:
        raise Throttled(wait=7.0)

    def not_in_the_protocol(self) -> str:
        return "secret"


@pytest.fixture
def probe_hop() -> Any:
    started = start_hop({"probe": (Probe, ProbeImpl())})
    yield started
    started.server.stop(None)


def probe_client(hop: Hop, **options: Any) -> Any:
    return remote("probe", Probe, hop.target, reads=("probe_read",), **options)


def test_field_errors_and_retry_after_are_preserved(probe_hop: Hop) -> None:
    client = probe_client(probe_hop)
    with pytest.raises(InvalidInput) as invalid:
        client.probe_invalid()
    assert invalid.value.errors == {
        "email": ["Enter a valid email address."],
        "name": ["Too long."],
    }
    with pytest.raises(Throttled) as throttled:
        client.probe_throttled()
    assert throttled.value.wait == 7.0
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert client.probe_write(when=when, tags=("a", "b")) == [when.isoformat(), "a", "b"]


def test_a_call_past_its_deadline_is_unavailable(probe_hop: Hop) -> None:
    client = probe_client(probe_hop, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.probe_read(delay=1.0)
    assert time.monotonic() - started < 0.9  # one budget for the attempts, not two


def test_a_server_that_is_down_is_unavailable_quickly() -> None:
    gone = start_hop({"probe": (Probe, ProbeImpl())})
    gone.server.stop(None)
    client = probe_client(gone, deadline=2.0)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.probe_read()
    assert time.monotonic() - started < 1.5


def test_a_read_is_retried_once_on_unavailable(probe_hop: Hop) -> None:
    client = probe_client(probe_hop)
    probe_hop.flaky.failures = 1
    assert client.probe_read() == "read"
    assert probe_hop.flaky.seen == 2

    probe_hop.flaky.failures = 2  # twice in a row: given up after the one retry
    with pytest.raises(Unavailable):
        client.probe_read()
    assert probe_hop.flaky.seen == 4


def test_a_write_is_not_retried(probe_hop: Hop) -> None:
    client = probe_client(probe_hop)
    probe_hop.flaky.failures = 1
    with pytest.raises(Unavailable):
        client.probe_write(when=datetime.now(UTC), tags=())
    assert probe_hop.flaky.seen == 1
    assert probe_hop.servicer.calls == []


def test_the_user_reads_are_named_explicitly() -> None:
    client = remote("users.repo", UserRepositoryInterface, "127.0.0.1:1", reads=USER_READS)
    assert client._reads == {"user_get", "user_credentials", "user_password_hash", "user_list"}
    with pytest.raises(TypeError, match="no method 'user_fetch'"):
        remote("users.repo", UserRepositoryInterface, "127.0.0.1:1", reads=("user_fetch",))


def test_only_the_protocols_methods_are_reachable(hop: Hop) -> None:
    client = remote("users.repo", UserRepositoryInterface, hop.target)
    assert not hasattr(client, "user_model_for_login")  # in users.repository, not the Protocol
    with grpc.insecure_channel(hop.target) as channel:
        stub = boundary_pb2_grpc.RepositoryStub(channel)
        for boundary, method in [
            ("users.repo", "user_model_for_login"),
            ("users.repo", "invalidate"),
            ("users.repo", "__class__"),
            ("nowhere", "user_get"),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.Invoke(
                    boundary_pb2.InvokeRequest(boundary=boundary, method=method, arguments=b"{}")
                )
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as bad:
            stub.Invoke(
                boundary_pb2.InvokeRequest(
                    boundary="users.repo", method="user_get", arguments=b'{"pk": 1}'
                )
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unexpected_server_errors_are_internal_and_keywords_are_checked(
    probe_hop: Hop,
) -> None:
    client = probe_client(probe_hop)
    with pytest.raises(RemoteCallFailed):
        client.probe_read(delay=-1.0)  # time.sleep raises ValueError on the far side
    with pytest.raises(TypeError):
        client.probe_read(nonsense=1)  # a keyword the Protocol lacks never leaves
    with pytest.raises(WireError, match="offset"):
        client.probe_write(when=datetime(2026, 1, 1), tags=())  # naive: refused before sending
    assert [method for _, method in probe_hop.servicer.calls] == ["probe_read"]


def test_metadata_reaches_the_repository_tier(
    probe_hop: Hop, caplog: pytest.LogCaptureFixture
) -> None:
    client = probe_client(probe_hop)
    with (
        caplog.at_level("DEBUG", logger="arcana.internal"),
        call_context(request="req-123", actor="user-9"),
    ):
        client.probe_read()
    (record,) = [r for r in caplog.records if r.getMessage() == "internal call probe.probe_read"]
    assert (record.request_id, record.acting_user, record.caller_tier) == (  # type: ignore[attr-defined]
        "req-123",
        "user-9",
        "service",
    )


# --- transport security ------------------------------------------------------------


def test_mutual_tls_from_settings(tls_settings: Pki) -> None:
    served = start_hop(credentials=server_credentials())
    try:
        client = remote(
            "authn.repo", AuthRepositoryInterface, served.target, credentials=channel_credentials()
        )
        assert client.refresh_tokens_revoke_all(user_id="00000000-0000-0000-0000-000000000000") == 0

        without_certificate = grpc.ssl_channel_credentials(
            root_certificates=tls_settings.ca.cert_pem.bytes()
        )
        stranger = remote(
            "authn.repo", AuthRepositoryInterface, served.target, credentials=without_certificate
        )
        with pytest.raises(Unavailable):
            stranger.refresh_tokens_revoke_all(user_id="00000000-0000-0000-0000-000000000000")
        plaintext = remote("authn.repo", AuthRepositoryInterface, served.target)
        with pytest.raises(Unavailable):
            plaintext.refresh_tokens_revoke_all(user_id="00000000-0000-0000-0000-000000000000")
        assert served.methods() == ["refresh_tokens_revoke_all"]
    finally:
        served.server.stop(None)


def test_plaintext_needs_internal_insecure(settings: Any) -> None:
    import dataclasses

    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, internal_insecure=False
    )
    with pytest.raises(ImproperlyConfigured, match="ARCANA_INTERNAL_INSECURE"):
        channel_credentials()
    settings.ARCANA_INTERNAL_TLS_CERT = "/nowhere/cert.pem"
    with pytest.raises(ImproperlyConfigured, match="ARCANA_INTERNAL_TLS_KEY"):
        channel_credentials()
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, internal_insecure=True
    )
    settings.ARCANA_INTERNAL_TLS_CERT = ""
    assert channel_credentials() is None
    assert server_credentials() is None


def test_remote_repository_refuses_no_targets() -> None:
    with pytest.raises(ImproperlyConfigured):
        RemoteBoundary(
            "users.repo",
            UserRepositoryInterface,
            reads=(),
            targets=(),
            deadline=1.0,
            credentials=None,
        )


def test_calls_are_balanced_over_the_targets_and_a_read_retries_on_the_next(
    probe_hop: Hop,
) -> None:
    second = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_boundary_servicer(second, "repository", {"probe": (Probe, ProbeImpl())})
    port = second.add_insecure_port("127.0.0.1:0")
    second.start()
    gone = start_hop({"probe": (Probe, ProbeImpl())})
    gone.server.stop(None)
    try:
        both = RemoteBoundary(
            "probe",
            Probe,
            reads=("probe_read",),
            targets=(probe_hop.target, f"127.0.0.1:{port}"),
            deadline=2.0,
            credentials=None,
        )
        for _ in range(4):
            assert both.probe_read() == "read"  # type: ignore[attr-defined]
        assert len(probe_hop.servicer.calls) == 2  # the other two went to ``second``

        one_down = RemoteBoundary(
            "probe",
            Probe,
            reads=("probe_read",),
            targets=(gone.target, probe_hop.target),
            deadline=2.0,
            credentials=None,
        )
        for _ in range(3):  # whichever comes first, the read lands on the live one
            assert one_down.probe_read() == "read"  # type: ignore[attr-defined]
        assert len(probe_hop.servicer.calls) == 5
    finally:
        second.stop(None)


def test_every_channel_to_a_peer_tier_reconnects_within_a_second(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """gRPC's own reconnect backoff grows to two minutes: a tier back from an
    outage would stay unreachable, calls and health checks alike, that long."""
    import dataclasses

    from arcana.core import internal

    built: list[dict[str, Any]] = []
    real = grpc.insecure_channel

    def spy(target: str, options: Any = None, **kwargs: Any) -> grpc.Channel:
        built.append(dict(options or ()))
        return real(target, options=options, **kwargs)

    monkeypatch.setattr(grpc, "insecure_channel", spy)
    monkeypatch.setattr(internal, "_health_channels", {})
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, repository_targets=("127.0.0.1:1",), internal_insecure=True
    )
    remote("users.repo", UserRepositoryInterface, "127.0.0.1:1").close()
    assert internal.tier_serving("repository") is False  # nothing listens on port 1
    assert len(built) == 2  # the boundary's channel, then the health check's
    for options in built:
        assert options["grpc.max_reconnect_backoff_ms"] <= 1000
        assert options["grpc.initial_reconnect_backoff_ms"] <= 1000
    for channel in internal._health_channels[("127.0.0.1:1",)]:
        channel.close()


def test_a_dead_replica_gets_no_calls_until_it_is_back(probe_hop: Hop) -> None:
    """Writes are not retried, so only the balancing keeps them off a dead
    replica: its channel fails, and the calls go to the live one."""
    port = free_port()
    client: Any = RemoteBoundary(
        "probe",
        Probe,
        reads=("probe_read",),
        targets=(f"127.0.0.1:{port}", probe_hop.target),
        deadline=2.0,
        credentials=None,
    )
    when = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        assert client.probe_read() == "read"  # retried on the live one if it went first
        wait_until(lambda: client._replicas.states()[0] is FAILING, timeout=10)
        for _ in range(6):
            assert client.probe_write(when=when, tags=()) == [when.isoformat()]
        assert probe_hop.methods()[-6:] == ["probe_write"] * 6

        revived = start_hop({"probe": (Probe, ProbeImpl())}, address=f"127.0.0.1:{port}")
        try:
            # gRPC reconnects within its backoff (at most a second here).
            wait_until(lambda: bool(client.probe_write(when=when, tags=()) and revived.methods()))
            wait_until(lambda: client._replicas.states()[0] is grpc.ChannelConnectivity.READY)
            before = len(probe_hop.servicer.calls), len(revived.methods())
            for _ in range(4):
                client.probe_write(when=when, tags=())
            after = len(probe_hop.servicer.calls), len(revived.methods())
            assert (after[0] - before[0], after[1] - before[1]) == (2, 2)  # balanced again
        finally:
            revived.server.stop(None)
    finally:
        client.close()


FAILING = grpc.ChannelConnectivity.TRANSIENT_FAILURE


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        time.sleep(0.05)


def test_a_retry_never_goes_back_to_the_replica_it_failed_on() -> None:
    """Concurrent calls move the turn on between a failure and its retry; the
    retry must still land elsewhere (the dead replica's channel may not have
    reported the failure yet)."""
    several = Replicas([grpc.insecure_channel(f"127.0.0.1:{free_port()}") for _ in range(3)])
    alone = Replicas([grpc.insecure_channel(f"127.0.0.1:{free_port()}")])
    try:
        for _ in range(9):
            first = several.pick()
            assert several.pick(avoid=first) != first
        assert alone.pick(avoid=0) == 0  # no other: the only one
    finally:
        several.close()
        alone.close()
