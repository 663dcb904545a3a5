"""gunicorn settings for the benchmark: exactly the deployed ``docker/gunicorn.conf.py``
(bind and workers from GUNICORN_BIND / GUNICORN_WORKERS), with the access log off.

The deployed file reads ``GUNICORN_ACCESSLOG`` but cannot turn the log off:
gunicorn treats any string (even ``/dev/null``) as a destination and formats a
line per request, which is not what a benchmark should measure.
"""

import runpy
from pathlib import Path

_DEPLOYED = Path(__file__).resolve().parent.parent / "docker" / "gunicorn.conf.py"

globals().update(
    {
        name: value
        for name, value in runpy.run_path(str(_DEPLOYED)).items()
        if not name.startswith("_") and name != "os"
    }
)
accesslog = None
