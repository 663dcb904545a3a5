"""``make bench``: REST vs gRPC, monolithic vs layered mode, side by side, against
their floors and the hop floor.

Run from the project root: ``.venv/bin/python bench/run.py [--quick]
[--modes monolithic,layered] [--workers N] [--duration S] [--concurrency 1,8]``;
``--help`` lists every option. The
implementation is the ``bench`` package; this file only makes it importable
when run as a script.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.main import main

    sys.exit(main())
