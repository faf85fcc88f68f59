# cliproxyd developer commands.  `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= etc/cliproxyd/config.yaml

.PHONY: venv run test lint bench check-config install-systemd dist clean

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/cliproxyd --config $(CONFIG)

check-config: venv
	$(VENV)/bin/cliproxyd --check-config --config $(CONFIG)

test: venv
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check cliproxyd tests

dist: venv
	$(PY) setup.py -q sdist

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
