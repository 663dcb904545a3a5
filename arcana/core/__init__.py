"""The shared core every app builds on, and the bottom of the import graph.

It imports nothing from the apps (``users``, ``authn``) nor from the rest of
the project package (``arcana.settings``, ``arcana.urls``, the gRPC server
assembly, the error translation), which may all import it. What is here:

- ``exceptions``: ``ApplicationError`` and its kinds, the base of every domain error;
- ``cache``, ``ratelimit``, ``lockout``: the fail-open cache and the counters
  behind per-operation rate limits and login lockouts (services use them);
- ``throttling``: DRF's scoped throttle, shared by REST views, the admin login
  and the gRPC interceptor;
- ``grpc_compat``: every workaround for django-grpc-framework.

Nothing a service imports from here imports ``rest_framework`` or ``grpc``
(``tests/test_layout.py`` keeps all of this true).
"""
