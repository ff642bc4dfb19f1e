# oscar_journeys: set up, run the demo shop, run the tests.
# Everything installs into .venv from PyPI; nothing else is needed for the demo and the
# plain test run (SQLite, Celery eager).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
BROKER_URL ?= redis://127.0.0.1:6379/15
DEMO_CUSTOMERS ?= 300
DEMO_DAYS ?= 365

.PHONY: install demo test test-integration bench messages clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,demo]"
	touch $@

install: $(VENV)/.installed

## demo: migrate the demo shop, fill it with demo customers once, and serve it on :8000
demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py shell -c "from oscar_journeys.models import Customer; import sys; sys.exit(0 if Customer.objects.exists() else 1)" \
		|| $(PY) manage.py journeys_demo_data --customers $(DEMO_CUSTOMERS) --days $(DEMO_DAYS) --seed 1
	$(PY) manage.py journeys_nightly
	$(PY) manage.py journeys_snapshot --backfill 30
	$(PY) manage.py journeys_setup_defaults
	$(PY) manage.py journeys_run
	DJANGO_SUPERUSER_PASSWORD=admin $(PY) manage.py createsuperuser --noinput --username admin --email admin@example.com 2>/dev/null || true
	@echo "Shop: http://127.0.0.1:8000/   Admin: http://127.0.0.1:8000/admin/ (admin / admin)"
	$(PY) manage.py runserver 127.0.0.1:8000

## test: the plain run (SQLite in memory, Celery eager) plus the architecture contract
test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

## test-integration: the whole suite on PostgreSQL, with a real Celery worker on Redis
test-integration: install
	DATABASE_URL=$(PG_URL) JOURNEYS_TEST_BROKER_URL=$(BROKER_URL) $(PY) -m pytest -q

## messages: refresh the es/pt_BR catalogues from the code and recompile the committed .mo files (needs gettext)
messages: install
	cd oscar_journeys && ../$(PY) ../manage.py makemessages -l es -l pt_BR --no-obsolete
	cd oscar_journeys && ../$(PY) ../manage.py compilemessages

bench: install
	$(PY) benchmarks/bench_receivers.py --database sqlite
	$(PY) benchmarks/bench_receivers.py --database postgres
	$(PY) benchmarks/bench_snapshot.py
	$(PY) benchmarks/bench_nightly.py
	$(PY) benchmarks/bench_triggers.py --database sqlite
	$(PY) benchmarks/bench_triggers.py --database postgres
	$(PY) benchmarks/bench_delivery.py

clean:
	rm -rf $(VENV) *.egg-info example_shop/db.sqlite3 example_shop/sent_emails
