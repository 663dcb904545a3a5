"""Logging filters the LOGGING setting installs.

:class:`DisallowedHostFilter` sits on ``django.security.DisallowedHost``.
Django logs every request with a Host header outside ALLOWED_HOSTS there, at
ERROR and with the full traceback of the DisallowedHost it raised: a scanner
trying a few hosts per second fills the log with tracebacks that say nothing
new. The filter lets one record per host through per minute and drops its
traceback; the client still gets the 400 JSON.
"""

import logging
import threading
import time
from collections import OrderedDict

WINDOW_SECONDS = 60.0
# Hosts remembered at once; beyond that the oldest is forgotten (and may be
# logged again), so a spray of random hosts cannot grow memory without bound.
MAX_HOSTS = 1024
# A Host header is at most a header's length; the key needs far less.
_KEY_CHARS = 255


def _host_of(record: logging.LogRecord) -> str:
    # The host exactly as Django checked it (Host, or X-Forwarded-Host when
    # USE_X_FORWARDED_HOST is on); failing a request, the message names it.
    raw_host = getattr(getattr(record, "request", None), "_get_raw_host", None)
    host = raw_host() if callable(raw_host) else record.getMessage()
    return str(host)[:_KEY_CHARS]


class DisallowedHostFilter(logging.Filter):
    """One record per host per ``window`` seconds, without ``exc_info``."""

    def __init__(self, window: float = WINDOW_SECONDS, max_hosts: int = MAX_HOSTS) -> None:
        super().__init__()
        self.window = window
        self.max_hosts = max_hosts
        self._logged_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        host = _host_of(record)
        now = time.monotonic()
        with self._lock:
            last = self._logged_at.get(host)
            if last is not None and now - last < self.window:
                return False
            self._logged_at[host] = now
            self._logged_at.move_to_end(host)
            while len(self._logged_at) > self.max_hosts:
                self._logged_at.popitem(last=False)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True
