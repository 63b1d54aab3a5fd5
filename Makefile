# Kaquan — the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SIMULATOR_PORT ?= 8099
# The suite runs on PostgreSQL and Redis: these defaults are the local servers.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/kaquan)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/15)

.PHONY: run test lint format worker beat messages bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Web, Celery worker and beat (on a filesystem broker unless REDIS_URL is set) and
# the supplier simulator, all stopped together by Ctrl-C (scripts/run_demo.py).
run: export SITE_URL ?= http://127.0.0.1:$(PORT)
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --simulator-url http://127.0.0.1:$(SIMULATOR_PORT)
	@echo ""
	@echo "Kaquan demo storefront: http://127.0.0.1:$(PORT)/  (admin: http://127.0.0.1:$(PORT)/admin/)"
	@echo "Supplier simulator:     http://127.0.0.1:$(SIMULATOR_PORT)/_control/report  (supplier demo-sim; docs/SUPPLIER_SIMULATOR.md)"
	@echo "Logins as printed above. Ctrl-C stops the web server, worker, beat and simulator."
	@echo ""
	$(PY) scripts/run_demo.py --port $(PORT) --simulator-port $(SIMULATOR_PORT)

test: $(VENV)/.installed
	@scripts/ensure-services.sh "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"
	@scripts/ensure-browser.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy accounts catalog storefront orders fulfillment config risk distribution
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) manage.py makemigrations --check --dry-run
	# CONN_MAX_AGE=0: test threads (live server, worker) must not keep connections
	# open past a test, or the test database cannot be dropped.
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" CONN_MAX_AGE=0 \
		$(PY) -m pytest --cov --cov-branch --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: $(VENV)/.installed
	@mkdir -p .run
	$(VENV)/bin/celery -A config beat --loglevel=INFO

messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=benchmarks
	$(PY) manage.py compilemessages --ignore=.venv

# The Django floor and Kaquan's benchmarks in one run, as the ratios of issue 6 (about
# 8 minutes; README.md "Benchmarks"). BENCH_ARGS: --quick, --soak, --app-root PATH, ...
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .run db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles .pytest_cache .coverage
