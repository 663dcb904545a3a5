"""gunicorn settings for ``make bench-wsgi``: the gthread configuration that
served REST before granian (``arcana.wsgi_server``) replaced it, with the
access log off.

Bind, workers and threads come from GUNICORN_BIND / GUNICORN_WORKERS /
GUNICORN_THREADS, set by bench/wsgi.py to the figures the granian side gets.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
timeout = 30
graceful_timeout = 20
# None, not "/dev/null": gunicorn formats a line per request for any destination.
accesslog = None
errorlog = "-"
loglevel = "info"
