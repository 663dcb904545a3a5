"""What the live, fault, container and benchmark runs share to start the service
as deployed and talk to it: :mod:`tests.support.servers` (a server process
group, free ports, readiness probes), :mod:`tests.support.stack` (the whole
stack in any deployment mode on a database of its own, and its REST client),
:mod:`tests.support.replication` (a private MariaDB primary and replica) and
:mod:`tests.support.prometheus` (a real Prometheus scraping a stack).

``bench/`` imports these to start what it measures; nothing here imports
``bench``."""
