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

# pyflakes and pycodestyle rules, spelled out here so the result does not depend on a
# developer's own ruff configuration.
lint: venv
	$(PY) -m ruff check --select E,F,W --ignore E731 --line-length 120 cliproxyd tests bench

# Benchmark (not part of `test`; needs wrk: apt-get install wrk).  Table on stdout, JSON in
# bench/results/.  BENCH_ARGS=--quick checks the harness in a fraction of the time.
bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

dist: venv
	$(PY) setup.py -q sdist

# Install as a systemd service (run as root): a `cliproxyd` system user, a virtualenv in
# $(PREFIX), the unit in /etc/systemd/system and /etc/cliproxyd/config.yaml if there is none yet.
PREFIX ?= /opt/cliproxyd
UNITDIR ?= /etc/systemd/system
install-systemd:
	id -u cliproxyd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cliproxyd \
		--no-create-home --shell /usr/sbin/nologin cliproxyd
	test -x $(PREFIX)/bin/python || $(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/pip install -q --upgrade .
	install -d -m 0770 -o root -g cliproxyd /etc/cliproxyd
	test -e /etc/cliproxyd/config.yaml || \
		install -m 0640 -o root -g cliproxyd etc/cliproxyd/config.yaml /etc/cliproxyd/config.yaml
	$(PREFIX)/bin/cliproxyd --check-config --config /etc/cliproxyd/config.yaml
	sed 's#/opt/cliproxyd/bin/cliproxyd#$(PREFIX)/bin/cliproxyd#' packaging/systemd/cliproxyd.service \
		> $(UNITDIR)/cliproxyd.service
	systemctl daemon-reload
	@echo "installed; start with: systemctl enable --now cliproxyd"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
