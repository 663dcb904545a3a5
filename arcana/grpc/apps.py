from django.apps import AppConfig


class GrpcConfig(AppConfig):
    name = "arcana.grpc"
    # The default label would be "grpc", easy to confuse with the grpc package.
    label = "arcana_grpc"
    verbose_name = "gRPC transport"

    def ready(self) -> None:
        from arcana.core import grpc_compat  # noqa: F401  (registers its system check)
