"""The gRPC transport: server assembly, interceptors and the ``grpcrunserver``
command. Servicers live beside their apps (``users.grpc``, ``authn.grpc``); the
django-grpc-framework fixes they share are in ``arcana.core.grpc_compat``."""
