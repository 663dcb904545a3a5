"""The gRPC transport: server assembly, interceptors, compat fixes and the
``grpcrunserver`` command. Servicers live beside their apps (``users.grpc``,
``authn.grpc``)."""
