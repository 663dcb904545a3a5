"""What the live, fault, container and benchmark runs share to start the service
as deployed and talk to it:

- :mod:`tests.support.servers`: a server process group, free ports
  (``ARCANA_TEST_PORTS``), readiness probes;
- :mod:`tests.support.stack`: the whole stack in any deployment mode on a
  database of its own, and a REST client for it;
- :mod:`tests.support.replication`: a private MariaDB primary and replica;
- :mod:`tests.support.prometheus`: a real Prometheus scraping a stack;
- :mod:`tests.support.gateway`: the microservices gateway (nginx) in front of
  upstreams a test names;
- :mod:`tests.support.proxy`: a TCP proxy that cuts a backend's link on demand;
- :mod:`tests.support.clients`: small REST/gRPC clients and "everyone at once";
- :mod:`tests.support.waiting`: waiting for a condition instead of sleeping.

``bench/`` imports these to start what it measures; nothing here imports
``bench``."""
