from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def wrap_statements(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Count and time every statement of a new connection (``METRICS_ENABLED``)
    and give it a span while tracing is on (``arcana.core.tracing``: one
    global read while off, so it is installed whether tracing is on or not).

    Connections are made where a process holds a database only: the refusing
    engine of the controller and service tiers never connects, so it gets no
    wrapper. Inserted first, not appended: ``connection.execute_wrapper()``
    pops the last wrapper when its block ends, and a connection opened inside
    such a block must not lose ours in its place.
    """
    from arcana.core.metrics import query_timer
    from arcana.core.tracing import statement_spans

    wrappers = connection.execute_wrappers
    if not any(getattr(wrapper, "arcana_statement_spans", False) for wrapper in wrappers):
        wrappers.insert(0, statement_spans(connection.vendor))
    if settings.METRICS_ENABLED and not any(
        getattr(wrapper, "arcana_query_timer", False) for wrapper in wrappers
    ):
        wrappers.insert(0, query_timer(connection.alias))


class ObserveConfig(AppConfig):
    name = "arcana.observe"
    label = "arcana_observe"
    verbose_name = "Observability"

    def ready(self) -> None:
        from arcana.core import metrics
        from arcana.observe import logs, traces

        logs.configure()
        metrics.set_enabled(settings.METRICS_ENABLED)
        try:
            traces.setup_from_env(f"arcana-{settings.ARCANA_DEPLOYMENT.name}")
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        connection_created.connect(wrap_statements, dispatch_uid="arcana.observe.statements")
