"""Records and domain errors to and from JSON, for the internal hop.

A :class:`Codec` is built from a boundary's Protocol (``users.interfaces.
UserRepositoryInterface``): it reads each method's keyword parameters and
result from the type hints and converts values by those types, so both sides
of a hop agree on the shapes without a schema of their own, and nothing can
be decoded into a type the Protocol does not name. The types it admits:

- ``None``, ``str``, ``int``, ``float``, ``bool``;
- ``datetime``: ISO 8601 *with* an offset (a naive datetime is refused on
  both ends: a time that means different things per tier is a bug);
- ``tuple[X, ...]``, ``list[X]``, ``Sequence[X]``, ``Iterable[X]`` (a JSON
  array; an iterable is materialised before it is sent), ``dict[str, X]``;
- ``X | None``;
- records: frozen dataclasses (``UserRecord``) and ``TypedDict`` s
  (``UserChanges``, with only its declared keys), field by field.

A type outside this list makes :class:`Codec` raise ``TypeError`` when it is
built (at start-up), not on the first call that uses it.

Both directions are compiled from the hints when the Codec is built (the hop
is on every request's path in layered mode): :func:`converter` decodes,
:func:`encoder` encodes. An encoder gives exactly what :func:`to_data` gives
(and refuses what it refuses); it only skips asking each value what it is
when the hint already says, and falls back to :func:`to_data` for a value of
another type than its hint names.

Errors: :func:`failure_of` flattens an ``ApplicationError`` into its ``kind``,
``code``, ``message``, field errors and retry-after; :func:`error_from`
raises it again on the calling side as the same class, found by ``code``
among the loaded subclasses of ``ApplicationError`` (falling back to the core
class of its ``kind``), so a caller cannot tell a local repository from a
remote one.
"""

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

from arcana.core.exceptions import ApplicationError, InvalidInput, Throttled

Convert = Callable[[Any], Any]


class WireError(ValueError):
    """A value that does not have the shape its type says."""


def protocol_methods(interface: type) -> tuple[str, ...]:
    """The public method names a Protocol declares (its own and its bases')."""
    names: set[str] = set()
    for klass in interface.__mro__:
        if klass in (object, typing.Protocol, typing.Generic):
            continue
        names.update(
            name
            for name, value in vars(klass).items()
            if not name.startswith("_") and inspect.isfunction(value)
        )
    return tuple(sorted(names))


# --- encoding: any admitted value to JSON-ready data ---------------------------


def to_data(value: Any) -> Any:
    """``value`` as JSON-ready data (by its run-time type)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise WireError("a datetime crossing a boundary needs an offset")
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_data(item) for key, item in value.items()}
    if isinstance(value, Iterable):
        return [to_data(item) for item in value]
    raise WireError(f"{type(value).__qualname__} cannot cross a boundary")


def _datetime_data(value: Any) -> Any:
    if type(value) is not datetime:
        return to_data(value)
    if value.utcoffset() is None:
        raise WireError("a datetime crossing a boundary needs an offset")
    return value.isoformat()


def _scalar_data(value: Any) -> Any:
    return value if type(value) in _JSON_SCALARS else to_data(value)


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _array_data(item: Convert) -> Convert:
    def encode(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [item(each) for each in value]
        return to_data(value)  # a generator, a set, or not an array at all

    return encode


def _record_data(kind: type) -> Convert:
    hints = get_type_hints(kind)
    fields = tuple((f.name, encoder(hints[f.name])) for f in dataclasses.fields(kind))

    def encode(value: Any) -> Any:
        if type(value) is not kind:
            return to_data(value)
        return {name: field_data(getattr(value, name)) for name, field_data in fields}

    return encode


def _mapping_data(items: Mapping[str, Convert], default: Convert) -> Convert:
    def encode(value: Any) -> Any:
        if not isinstance(value, dict):
            return to_data(value)
        return {str(key): items.get(key, default)(item) for key, item in value.items()}

    return encode


def encoder(hint: Any) -> Convert:
    """The function that turns a value of ``hint`` into JSON-ready data, as
    :func:`to_data` would; raises ``TypeError`` for a type this module does
    not carry (as :func:`converter` does)."""
    converter(hint)  # one definition of what may cross: refused here as there
    if hint is datetime:
        return _datetime_data
    if hint in _SCALARS:
        return _scalar_data
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        inner = encoder(next(arg for arg in args if arg is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin in _ARRAYS:
        return _array_data(encoder(args[0]))
    if origin is dict:
        return _mapping_data({}, encoder(args[1]))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record_data(hint)
    # A TypedDict (the only other kind converter admits).
    hints = get_type_hints(hint)
    return _mapping_data({name: encoder(item) for name, item in hints.items()}, to_data)


# --- decoding: JSON data to the type a hint names -------------------------------


def _expect(kind: type | tuple[type, ...], value: Any, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise WireError(f"expected {what}, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if type(value) is float:
        return value
    return float(_expect((int, float), value, "a number"))


def _datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(_expect(str, value, "an ISO datetime"))
    except ValueError:
        raise WireError(f"{value!r} is not an ISO datetime") from None
    if parsed.utcoffset() is None:
        raise WireError(f"{value!r} has no offset")
    return parsed


def _array(item: Convert, build: Callable[[list[Any]], Any]) -> Convert:
    return lambda value: build([item(each) for each in _expect(list, value, "an array")])


def _optional(inner: Convert) -> Convert:
    return lambda value: None if value is None else inner(value)


def _record(kind: type) -> Convert:
    hints = get_type_hints(kind)
    fields = {f.name: converter(hints[f.name]) for f in dataclasses.fields(kind)}

    names = fields.keys()

    def build(value: Any) -> Any:
        data = _expect(dict, value, f"a {kind.__name__}")
        if not data.keys() <= names:
            unknown = sorted(data.keys() - names)
            raise WireError(f"{kind.__name__} has no field {unknown[0]!r}")
        try:
            return kind(**{name: fields[name](item) for name, item in data.items()})
        except TypeError as exc:  # a required field missing
            raise WireError(f"{kind.__name__}: {exc}") from None

    return build


def _typed_dict(kind: type) -> Convert:
    fields = {name: converter(hint) for name, hint in get_type_hints(kind).items()}

    def build(value: Any) -> Any:
        data = _expect(dict, value, f"a {kind.__name__}")
        unknown = data.keys() - fields.keys()
        if unknown:
            raise WireError(f"{kind.__name__} has no key {sorted(unknown)[0]!r}")
        return {name: fields[name](item) for name, item in data.items()}

    return build


def _exactly(kind: type, what: str) -> Convert:
    """JSON decodes to exact types (never a subclass; ``true`` is a bool, not
    an int), so one identity check is the whole test."""

    def check(value: Any) -> Any:
        if type(value) is kind:
            return value
        raise WireError(f"expected {what}, got {type(value).__name__}")

    return check


_SCALARS: dict[Any, Convert] = {
    str: _exactly(str, "a string"),
    bool: _exactly(bool, "true or false"),
    int: _exactly(int, "an integer"),
    float: _number,
    datetime: _datetime,
    type(None): _exactly(type(None), "null"),
}
_ARRAYS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    tuple: tuple,
    Sequence: tuple,
    Iterable: tuple,
}


def converter(hint: Any) -> Convert:
    """The function that turns JSON data into a value of ``hint``; raises
    ``TypeError`` for a type this module does not carry."""
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return _optional(converter(others[0]))
        raise TypeError(f"{hint}: only X | None unions cross a boundary")
    if origin in _ARRAYS:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"{hint}: only tuple[X, ...] crosses a boundary")
        if not args:
            raise TypeError(f"{hint}: say what the items are")
        return _array(converter(args[0]), _ARRAYS[origin])
    if origin is dict and args and args[0] is str:
        item = converter(args[1])
        return lambda value: {
            _expect(str, key, "a string key"): item(each)
            for key, each in _expect(dict, value, "an object").items()
        }
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint)
    if is_typeddict(hint):
        return _typed_dict(hint)
    raise TypeError(f"{hint!r} cannot cross a boundary")


@dataclass(frozen=True)
class Method:
    """One method of a boundary: how to decode its arguments and its result,
    and how to encode them."""

    name: str
    parameters: Mapping[str, Convert]
    required: frozenset[str]
    result: Convert
    encode_parameters: Mapping[str, Convert]
    encode_result: Convert


def _method(interface: type, name: str) -> Method:
    function = getattr(interface, name)
    hints = get_type_hints(function)
    parameters: dict[str, Convert] = {}
    encoders: dict[str, Convert] = {}
    required: set[str] = set()
    for parameter in list(inspect.signature(function).parameters.values())[1:]:
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{interface.__name__}.{name}: {parameter.name} is not keyword-only")
        parameters[parameter.name] = converter(hints[parameter.name])
        encoders[parameter.name] = encoder(hints[parameter.name])
        if parameter.default is inspect.Parameter.empty:
            required.add(parameter.name)
    return Method(
        name,
        parameters,
        frozenset(required),
        converter(hints["return"]),
        encoders,
        encoder(hints["return"]),
    )


@dataclass(frozen=True)
class Codec:
    """The wire form of one boundary, from its Protocol."""

    interface: type
    methods: Mapping[str, Method] = field(init=False)

    def __post_init__(self) -> None:
        methods = {name: _method(self.interface, name) for name in protocol_methods(self.interface)}
        object.__setattr__(self, "methods", methods)

    def method(self, name: str) -> Method:
        found = self.methods.get(name)
        if found is None:
            raise WireError(f"{self.interface.__name__} has no method {name!r}")
        return found

    def encode_arguments(self, name: str, arguments: Mapping[str, Any]) -> bytes:
        encoders = self.method(name).encode_parameters
        unknown = arguments.keys() - encoders.keys()
        if unknown:
            raise TypeError(f"{name}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        return _dump({key: encoders[key](value) for key, value in arguments.items()})

    def decode_arguments(self, name: str, data: bytes) -> dict[str, Any]:
        method = self.method(name)
        raw = _expect(dict, _load(data), "an object of arguments")
        unknown = raw.keys() - method.parameters.keys()
        if unknown:
            raise WireError(f"{name}() takes no argument {sorted(unknown)[0]!r}")
        missing = method.required - raw.keys()
        if missing:
            raise WireError(f"{name}() needs {sorted(missing)[0]!r}")
        return {key: method.parameters[key](value) for key, value in raw.items()}

    def encode_result(self, name: str, value: Any) -> bytes:
        return _dump(self.method(name).encode_result(value))

    def decode_result(self, name: str, data: bytes) -> Any:
        return self.method(name).result(_load(data))


# Built once: json.dumps with any non-default option builds an encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()


def _dump(data: Any) -> bytes:
    return _ENCODER.encode(data).encode()


def _load(data: bytes) -> Any:
    # Always UTF-8 on this wire (our _dump): no need for json.loads' detection.
    try:
        return _DECODER.decode(data.decode())
    except (ValueError, UnicodeDecodeError):
        raise WireError("not JSON") from None


# --- errors ----------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """An ``ApplicationError`` as plain data."""

    kind: str
    code: str
    message: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    retry_after: float | None = None


def failure_of(exc: ApplicationError) -> Failure:
    errors = exc.errors if isinstance(exc, InvalidInput) else {}
    wait = exc.wait if isinstance(exc, Throttled) else None
    return Failure(
        kind=exc.kind,
        code=exc.code,
        message=exc.message,
        errors={str(key): [str(m) for m in messages] for key, messages in errors.items()},
        retry_after=None if wait is None else float(wait),
    )


def _subclasses(base: type[ApplicationError]) -> Iterable[type[ApplicationError]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def error_class(kind: str, code: str) -> type[ApplicationError]:
    """The class that declares ``code`` for ``kind`` (its own ``code``, not an
    inherited one); when several do, or none, the core class of ``kind``."""
    declaring = [
        cls
        for cls in _subclasses(ApplicationError)
        if cls.__dict__.get("code") == code and cls.kind == kind
    ]
    core = [
        cls
        for cls in ApplicationError.__subclasses__()
        if cls.__module__ == ApplicationError.__module__ and cls.kind == kind
    ]
    if len(declaring) == 1:
        return declaring[0]
    # Several classes share a code: prefer the core one among them.
    shared = [cls for cls in declaring if cls in core]
    if shared:
        return shared[0]
    return core[0] if core else ApplicationError


def error_from(failure: Failure) -> ApplicationError:
    """The domain exception ``failure`` describes, ready to raise."""
    cls = error_class(failure.kind, failure.code)
    exc = cls.__new__(cls)
    # Not cls.__init__: subclasses may take other arguments; these are the
    # attributes every ApplicationError (and InvalidInput, Throttled) carries.
    Exception.__init__(exc, failure.message)
    exc.message = failure.message
    if isinstance(exc, InvalidInput):
        exc.errors = {key: list(messages) for key, messages in failure.errors.items()}
    if isinstance(exc, Throttled):
        exc.wait = failure.retry_after
    return exc
