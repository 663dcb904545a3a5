from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def time_queries(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Count and time every statement of a new connection.

    Connections are made where a process holds a database only: the refusing
    engine of the controller and service tiers never connects, so it gets no
    wrapper. Inserted first, not appended: ``connection.execute_wrapper()``
    pops the last wrapper when its block ends, and a connection opened inside
    such a block must not lose ours in its place.
    """
    from arcana.core.metrics import query_timer

    wrappers = connection.execute_wrappers
    if not any(getattr(wrapper, "arcana_query_timer", False) for wrapper in wrappers):
        wrappers.insert(0, query_timer(connection.alias))


class ObserveConfig(AppConfig):
    name = "arcana.observe"
    label = "arcana_observe"
    verbose_name = "Observability"

    def ready(self) -> None:
        if settings.METRICS_ENABLED:
            connection_created.connect(time_queries, dispatch_uid="arcana.observe.time_queries")
