# Arcana Cloud for Django. `make run` and `make test` work on a fresh machine:
# both install what is missing first (Debian packages for mysqlclient, .venv).
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
GRPC_PORT ?= 50051
MODE ?= monolithic

.PHONY: run test lint format typecheck protos protos-check superuser migrate bench bench-observe observe bench-hop bench-wsgi bench-aio bench-scaling seed bench-lists capacity soak compose-check compose-secrets image containers ci clean

run:  ## Set up, migrate, then serve REST on :8000 and gRPC on :50051 (MODE=monolithic|layered|microservices; Ctrl-C stops all)
	@scripts/bootstrap.sh
	@MODE=$(MODE) HOST=$(HOST) PORT=$(PORT) GRPC_PORT=$(GRPC_PORT) scripts/run.sh

test:  ## Set up, then run the whole suite with coverage (SQLite, local-memory cache), a process per core
	@scripts/bootstrap.sh --dev
	@$(PY) -m pytest -n $(or $(TEST_PROCESSES),auto) --cov --cov-report=term

lint:  ## ruff (lint + format check), mypy, and bandit (no high-severity finding allowed)
	@scripts/bootstrap.sh --dev
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy .
	@.venv/bin/bandit -q -r arcana users authn -x '*/migrations/*' --severity-level high

format:
	@.venv/bin/ruff check --fix .
	@.venv/bin/ruff format .

protos:  ## Regenerate the Python beside protos/arcana/v1/*.proto
	@scripts/bootstrap.sh
	@scripts/gen_protos.sh

protos-check:  ## Fail when the generated files are stale
	@scripts/gen_protos.sh --check

migrate:
	@scripts/bootstrap.sh
	@$(PY) manage.py migrate --noinput

superuser:  ## Create an admin where the users' data lives (MODE=layered: the repository tier; MODE=microservices: the users service)
	@scripts/bootstrap.sh
ifeq ($(MODE),layered)
	@scripts/tier.sh repository migrate --noinput
	@scripts/tier.sh repository createsuperuser $(if $(NOINPUT),--noinput,)
else ifeq ($(MODE),microservices)
	@scripts/service.sh users migrate --noinput
	@scripts/service.sh users createsuperuser $(if $(NOINPUT),--noinput,)
else
	@$(PY) manage.py migrate --noinput
	@$(PY) manage.py createsuperuser $(if $(NOINPUT),--noinput,)
endif

bench:  ## REST vs gRPC, monolithic vs layered mode, side by side; prints a table, writes bench/out/bench.png (RUNS=N: N runs in a row and the targets of each; CAPACITY=1: then make capacity)
	@scripts/bootstrap.sh --dev
	@$(PY) bench/run.py $(if $(RUNS),--runs $(RUNS),)
	@$(if $(filter 1,$(CAPACITY)),$(PY) -m bench.capacity,true)

capacity:  ## Cost per request per tier, statement and Redis command (private MariaDB + Redis); renders docs/CAPACITY.md for 10k and 100k req/s (QUICK=1: smoke run; RUNS=N: least CPU of N)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.capacity $(if $(filter 1,$(QUICK)),--quick,) $(if $(RUNS),--runs $(RUNS),)

bench-observe:  ## Monolithic REST get-by-id with metrics + request logs on vs off, interleaved rounds; the ratio (target >= 0.9)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.observe

observe:  ## Layered stack + Debian's Prometheus + a short load; draws the dashboard's panels into docs/observe.png (needs DATABASE_URL=mysql://...)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.observe_run

bench-wsgi:  ## granian (the REST server as deployed) vs gunicorn gthread for monolithic REST get-by-id, interleaved rounds; prints the table
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.wsgi

bench-aio:  ## gRPC floor on grpcio's sync server vs grpc.aio (thread pool, inline), interleaved rounds; prints the table (DATABASE_URL=mysql://... optional)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.aio $(if $(filter mysql%,$(DATABASE_URL)),--database-url $(DATABASE_URL),)

bench-scaling:  ## 1 vs 2 server processes (the REST server, grpcrunserver) at concurrency 8 on MariaDB + Redis, interleaved rounds: ratio, CPU per request, calls per worker (DATABASE_URL=mysql://... REDIS_URL=redis://...)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.scaling

bench-hop:  ## One internal hop against the bare mTLS echo, without the rest of the stack (needs DATABASE_URL=mysql://... REDIS_URL=redis://...)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.hop

seed:  ## Seed USERS (default 1,000,000) users by bulk insert where DATABASE_URL points; idempotent
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.seed --users $(or $(USERS),1000000)

bench-lists:  ## List pages at a million rows, by offset and by cursor (needs DATABASE_URL=mysql://... seeded with `make seed`)
	@scripts/bootstrap.sh --dev
	@$(PY) -m bench.lists

soak:  ## Five-minute load run with the figures printed at the end
	@scripts/bootstrap.sh --dev
	@$(PY) bench/soak.py --seconds 300

compose-check:  ## Validate docker/compose.*.yml with docker-compose config -q (no engine needed)
	@scripts/compose_check.sh

compose-secrets:  ## Make the development secrets the compose files mount (docker/secrets/, git-ignored)
	@scripts/bootstrap.sh
	@$(PY) scripts/compose_secrets.py

image:  ## Build the production image (docker/Dockerfile) with rootful podman; prints its size (IMAGE=arcana:latest)
	@scripts/bootstrap.sh --containers
	@scripts/image.sh

containers:  ## Run the built image as containers under podman and test them (MODE=monolithic|layered|microservices; root)
ifeq ($(filter $(MODE),monolithic layered microservices),)
	@echo "containers: MODE=$(MODE) is not monolithic, layered or microservices" >&2; exit 2
endif
	@scripts/bootstrap.sh --dev --containers
ifneq ($(MODE),monolithic)
	@scripts/standins.sh
endif
	@ARCANA_CONTAINER_IMAGE=$(or $(IMAGE),arcana:latest) $(PY) -m pytest -p no:cacheprovider tests/containers/test_$(MODE).py

ci:
	@bash .ci/run

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov staticfiles
