# payivr: the two commands of the README are `make demo` and `make test`.
# Both bootstrap a fresh Debian 12 machine first (apt packages, a virtualenv).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests, the demo, the Kamailio embedded interpreter and the native
# Kamailio baseline of bench/kamailio_cps.py (ndb_redis) need (`kamailio` ships
# xhttp_prom; `prometheus` ships promtool for the monitoring tests).
APT_PACKAGES := python3 python3-venv python3-dev build-essential openssl procps \
	redis-server kamailio kamailio-python3-modules kamailio-tls-modules kamailio-redis-modules \
	sip-tester \
	python3-redis python3-yaml python3-apt logrotate systemd espeak-ng sox libsox-fmt-base flite \
	chromium chromium-driver rtpengine-daemon prometheus stunnel4 tcpdump \
	strongswan-charon strongswan-swanctl libcharon-extra-plugins
PYTEST_ARGS ?=

.PHONY: bootstrap apt venv lint test demo demo-flow clean

bootstrap: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: venv
	$(VENV)/bin/ruff check pylib tests bench kamailio
	$(VENV)/bin/ruff format --check pylib tests bench kamailio
	$(VENV)/bin/mypy

# pytest's exit code 5 means "no tests ran": that is a failure here, never a pass.
# The tests mostly wait on the servers they start, so two pytest-xdist workers (each
# with its own port range, tests/conftest.py) nearly halve the wall time on 2 cores.
# --dist loadfile: each test file runs whole on one worker, so a module's fixtures (the
# Ansible converge, a Kamailio stack) are built once. (loadgroup would not do: with
# pytest 9.2 it ignores xdist_group marks, pytest-xdist issue 1386.)
PYTEST_WORKERS ?= 2
test: bootstrap lint
	@set +e; $(VENV)/bin/pytest -q -ra --durations=25 -n $(PYTEST_WORKERS) --dist loadfile \
		$(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

demo: bootstrap
	$(VENV)/bin/payivr demo --config config/payivr.example.yaml

demo-flow: bootstrap
	$(VENV)/bin/payivr flows demo --config config/payivr.example.yaml

clean:
	rm -rf $(VENV) build *.egg-info var
