"""Property-based fuzzing of every gRPC method over the real in-process server.

Requests are built from the protos' own descriptors, so every field of every
method of ``arcana.v1.UserService`` and ``arcana.v1.AuthService`` gets random
values (unicode, NUL, huge, empty, malformed and real ids, unknown roles and
sync statuses, negative and huge numbers), sent with random authorization
metadata (none, garbage, forged, expired, a user's, an admin's). A second
property sends raw bytes, valid messages mangled and undecodable ones, through
a generic channel with identity serializers.

Whatever arrives, the answer must be one of the contract's status codes: never
UNKNOWN, never INTERNAL (which would mean an unhandled server error).
"""

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given, settings
from hypothesis import strategies as st

from protos.arcana.v1 import auth_pb2, users_pb2
from tests.conftest import expired_token, forged_token, tokens_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.grpc.conftest import live_db
from tests.hardening.conftest import FUZZ_SETTINGS
from users import repository, tokens

pytestmark = live_db

CONTRACT_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)

SERVICES = (
    users_pb2.DESCRIPTOR.services_by_name["UserService"],
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
)
METHODS: dict[str, MethodDescriptor] = {
    f"/{service.full_name}/{method.name}": method
    for service in SERVICES
    for method in service.methods
}

MESSAGE_EXAMPLES = 40  # per method
RAW_EXAMPLES = 15  # per method

# Text a protobuf string can carry: anything but lone surrogates (which the
# client cannot even encode), NUL and the rest of the control characters included.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
HUGE = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from(["a", "é", "😀", "\x00", "İ", " "]),
    st.integers(min_value=255, max_value=300_000),
)
WORDS = st.sampled_from(
    ["", " ", "admin", "user", "emperor", "synced", "pending", "failed", "SYNCED", "null"]
)
# Addresses that pass the format check but change when normalised: "İ" lower-cases
# to two code points (longer, and no longer a valid address).
TRICKY_EMAILS = st.builds(
    lambda unit, count: unit * count + "@example.com",
    st.sampled_from(["İ", "\u212a", "\u017f", "A"]),  # Kelvin sign, long s
    st.one_of(st.integers(1, 10), st.integers(120, 242)),
)
BAD_IDS = st.sampled_from(
    ["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "{" + str(uuid.UUID(int=1)) + "}", "0"]
)
# Metadata values must be printable ASCII, or the client refuses to send them.
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


class Fixtures:
    """Real users and tokens the strategies draw from."""

    def __init__(self) -> None:
        self.user = UserFactory.create(name="Grpc User", email="grpc-user@example.com")
        self.admin = UserFactory.create(
            name="Grpc Admin", email="grpc-admin@example.com", admin=True
        )
        self.victim = UserFactory.create(name="Grpc Victim", email="grpc-victim@example.com")
        users = (self.user, self.admin, self.victim)
        self.ids = [str(user.pk) for user in users]
        self.emails = [user.email for user in users]
        self.refresh_tokens = [tokens_for(user).refresh for user in users for _ in range(3)]
        # Links as mailed: uids of real users, their real reset and verification tokens.
        self.uids = [tokens.uid_of(user_id) for user_id in self.ids]
        self.link_tokens = [
            token
            for user_id in self.ids
            for token in (
                tokens.password_reset_tokens.token_for(
                    repository.user_credentials_of(user_id=user_id)
                ),
                tokens.email_verification_tokens.token_for(repository.user_get(user_id=user_id)),
            )
        ]
        # The first two (valid tokens) are drawn most often: see metadata_strategy.
        self.metadata: list[tuple[tuple[str, str], ...]] = [
            (("authorization", f"Bearer {tokens_for(self.admin).access}"),),
            (("authorization", f"Bearer {tokens_for(self.user).access}"),),
            (),
            (("authorization", f"Bearer {forged_token(self.user)}"),),
            (("authorization", f"Bearer {expired_token(self.admin)}"),),
            (("authorization", f"Bearer {self.refresh_tokens[0]}"),),  # wrong token type
            (("authorization", "Bearer"),),
            (("authorization", "Basic dXNlcjpwYXNz"),),
        ]

    def plausible(self, field: FieldDescriptor) -> st.SearchStrategy[Any] | None:
        """Values that pass validation, so the fuzzing reaches past the serializers."""
        by_name: dict[str, st.SearchStrategy[Any]] = {
            "id": st.sampled_from(self.ids),
            "name": st.text(st.characters(categories=["L", "Zs"]), min_size=1, max_size=30),
            "email": st.one_of(st.emails(), TRICKY_EMAILS),
            "password": st.sampled_from([DEFAULT_PASSWORD, "another long passphrase 99"]),
            "current_password": st.sampled_from([DEFAULT_PASSWORD, "another long passphrase 99"]),
            "new_password": st.sampled_from([DEFAULT_PASSWORD, "another long passphrase 99"]),
            "refresh": st.sampled_from(self.refresh_tokens),
            "uid": st.sampled_from(self.uids),
            "token": st.sampled_from(self.link_tokens),
            "sync_status": st.sampled_from(["synced", "pending", "failed"]),
            "search": st.sampled_from(["", "grpc", "example.com"]),
            "page": st.integers(0, 3),
            "size": st.integers(1, 100),
            "values": st.sampled_from(["user", "admin"]),
        }
        return by_name.get(field.name)

    def strings(self) -> st.SearchStrategy[str]:
        return st.one_of(
            TEXT,
            HUGE,
            WORDS,
            BAD_IDS,
            st.uuids().map(str),
            st.sampled_from(self.ids),
            st.sampled_from(self.emails),
            st.emails(),
            TRICKY_EMAILS,
            st.just(DEFAULT_PASSWORD),
            st.sampled_from(self.refresh_tokens),
        )

    def metadata_strategy(self) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
        garbage = st.tuples(st.tuples(st.just("authorization"), ASCII))
        return weighted(
            (4, st.sampled_from(self.metadata[:2])),
            (3, st.sampled_from(self.metadata)),
            (1, garbage),
        )


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given odds (``one_of`` picks evenly)."""
    tickets = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(tickets) - 1).flatmap(lambda ticket: tickets[ticket])


def _scalar(field: FieldDescriptor, fixtures: Fixtures) -> st.SearchStrategy[Any]:
    plausible = fixtures.plausible(field)
    junk = _junk(field, fixtures)
    return junk if plausible is None else weighted((1, plausible), (1, junk))


def _junk(field: FieldDescriptor, fixtures: Fixtures) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return fixtures.strings()
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.one_of(
            st.integers(-(2**31), 2**31 - 1), st.sampled_from([-1, 0, 1, 100, 101, 2**31 - 1])
        )
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.integers(-(2**63), 2**63 - 1)
    raise AssertionError(f"no strategy for field {field.full_name} (type {field.type})")


def message_strategy(
    message_class: type[Message], fixtures: Fixtures
) -> st.SearchStrategy[Message]:
    """Any message of this type: each field set to a random value, or left unset."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    field: Any
    for field in message_class.DESCRIPTOR.fields:
        value: st.SearchStrategy[Any]
        if field.message_type is not None:
            value = message_strategy(GetMessageClass(field.message_type), fixtures)
        else:
            value = _scalar(field, fixtures)
        if field.is_repeated:
            value = st.lists(value, max_size=12)
        # Unset and set-to-default differ on wire only for fields with presence.
        fields[field.name] = weighted((1, st.none()), (4, value))

    def build(values: dict[str, Any]) -> Message:
        message = message_class()
        for name, value in values.items():
            if value is None:
                continue
            field = message_class.DESCRIPTOR.fields_by_name[name]
            if field.is_repeated:
                getattr(message, name).extend(value)
            elif field.message_type is not None:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries(fields).map(build)


def raw_payloads(message: st.SearchStrategy[Message]) -> st.SearchStrategy[bytes]:
    """Bytes that may or may not decode as the method's request."""
    serialized = message.map(lambda item: item.SerializeToString())
    short_string = st.binary(max_size=100)
    return st.one_of(
        st.binary(max_size=2048),
        # Field 1 as a length-delimited string holding bytes that are not UTF-8.
        short_string.map(lambda data: b"\x0a" + bytes([len(data)]) + data),
        st.tuples(serialized, st.binary(min_size=1, max_size=64)).map(lambda pair: b"".join(pair)),
        serialized.map(lambda data: data[: len(data) // 2]),
        st.just(b"\xff" * 16),  # a varint that never ends
    )


def _code(call: Callable[..., Any], request: Any, metadata: Any) -> grpc.StatusCode:
    try:
        call(request, metadata=metadata, timeout=20)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


@pytest.fixture
def fixtures(grpc_channel: grpc.Channel) -> Fixtures:
    return Fixtures()


def _unary(
    channel: grpc.Channel, method: str, descriptor: MethodDescriptor, *, raw: bool
) -> Callable[..., Any]:
    if raw:  # identity serializers: the bytes go on the wire as they are
        return channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    output = GetMessageClass(descriptor.output_type)
    return channel.unary_unary(
        method,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=output.FromString,
    )


def test_every_method_is_fuzzed() -> None:
    """Guards the lists below against a new RPC nobody fuzzes."""
    assert set(METHODS) == {
        "/arcana.v1.UserService/GetUser",
        "/arcana.v1.UserService/ListUsers",
        "/arcana.v1.UserService/CreateUser",
        "/arcana.v1.UserService/UpdateUser",
        "/arcana.v1.UserService/DeleteUser",
        "/arcana.v1.AuthService/Register",
        "/arcana.v1.AuthService/Login",
        "/arcana.v1.AuthService/Refresh",
        "/arcana.v1.AuthService/Logout",
        "/arcana.v1.AuthService/LogoutAll",
        "/arcana.v1.AuthService/ListSessions",
        "/arcana.v1.AuthService/RevokeSession",
        "/arcana.v1.AuthService/Me",
        "/arcana.v1.AuthService/UpdateMe",
        "/arcana.v1.AuthService/ChangePassword",
        "/arcana.v1.AuthService/RequestPasswordReset",
        "/arcana.v1.AuthService/ConfirmPasswordReset",
        "/arcana.v1.AuthService/VerifyEmail",
        "/arcana.v1.AuthService/ResendVerificationEmail",
    }


@pytest.mark.parametrize("method", list(METHODS))
def test_fuzz_grpc_messages(grpc_channel: grpc.Channel, fixtures: Fixtures, method: str) -> None:
    descriptor = METHODS[method]
    call = _unary(grpc_channel, method, descriptor, raw=False)
    request_class = GetMessageClass(descriptor.input_type)
    _fuzz(
        f"gRPC fuzz {method}",
        call,
        message_strategy(request_class, fixtures),
        fixtures,
        MESSAGE_EXAMPLES,
    )


@pytest.mark.parametrize("method", list(METHODS))
def test_fuzz_grpc_raw_bytes(grpc_channel: grpc.Channel, fixtures: Fixtures, method: str) -> None:
    descriptor = METHODS[method]
    call = _unary(grpc_channel, method, descriptor, raw=True)
    request_class = GetMessageClass(descriptor.input_type)
    _fuzz(
        f"gRPC raw {method}",
        call,
        raw_payloads(message_strategy(request_class, fixtures)),
        fixtures,
        RAW_EXAMPLES,
    )


def _fuzz(label: str, call: Any, requests: Any, fixtures: Fixtures, examples: int) -> None:
    """Send ``examples`` generated requests with generated metadata; every answer
    must carry one of the contract's status codes."""
    seen: dict[grpc.StatusCode, int] = {}

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(request=requests, metadata=fixtures.metadata_strategy())
    def fuzz(request: Any, metadata: Any) -> None:
        code = _code(call, request, metadata)
        seen[code] = seen.get(code, 0) + 1
        shown = request[:40] if isinstance(request, bytes) else type(request).__name__
        assert code in CONTRACT_CODES, f"{label} answered {code} to {shown!r}"

    fuzz()
    print(f"\n{label}: {sum(seen.values())} calls, {sorted(c.name for c in seen)}")
    assert sum(seen.values()) >= examples
