"""REST vs gRPC benchmark (``make bench``); entry point ``bench/run.py``.

The servers it measures are started by ``tests.support`` (shared with the live
tests); this package holds only what measures them."""

from pathlib import Path

# gunicorn, the REST server granian replaced, for ``make bench-wsgi`` only
# (bench/gunicorn_conf.py).
BENCH_GUNICORN_CONF = Path(__file__).resolve().parent / "gunicorn_conf.py"
