"""The shared core every app builds on, and the bottom of the import graph.

It imports nothing from the apps (``users``, ``authn``) nor from the rest of
the project package (``arcana.settings``, ``arcana.urls``, the gRPC server
assembly, the error translation), which may all import it.

For services (none of these imports ``rest_framework`` or ``grpc``):

- ``exceptions``: ``ApplicationError`` and its kinds, the base of every domain error;
- ``cache``, ``ratelimit``, ``lockout``: the fail-open cache and the counters
  behind per-operation rate limits and login lockouts;
- ``principal``: who is calling (``Principal``, the ``Caller`` protocol) and
  the authenticator ``settings.ARCANA_AUTHENTICATOR`` names.

For controllers:

- ``rest``: ``validated``, ``actor_of`` / ``caller_of``, ``client_of``;
- ``grpc``: the caller of a call, ``client_address``, the public-method registry;
- ``throttling``: DRF's scoped throttle (REST views, admin login, gRPC);
- ``grpc_compat``: every workaround for django-grpc-framework.

``tests/test_layout.py`` keeps all of this true.
"""
