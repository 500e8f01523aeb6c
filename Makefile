# Berth: `make run` serves the dashboard, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export BERTH_ROOT ?= /var/lib/berth
export BERTH_RUN ?= /run/berth

# Debian packages: the runtime, the supervisor, the seed image's busybox, the firewall tool, an init;
# and for tests a registry, skopeo, the browser (and docker-compose, below).
RUN_PACKAGES := runc conmon busybox-static nftables tini catatonit zstd aardvark-dns
TEST_PACKAGES := skopeo docker-registry chromium
# binary that proves each package is installed (package:path)
PACKAGE_PROBES := runc:/usr/sbin/runc conmon:/usr/bin/conmon busybox-static:/bin/busybox \
	nftables:/usr/sbin/nft tini:/usr/bin/tini catatonit:/usr/bin/catatonit zstd:/usr/bin/zstd \
	aardvark-dns:/usr/lib/podman/aardvark-dns \
	skopeo:/usr/bin/skopeo docker-registry:/usr/bin/docker-registry chromium:/usr/bin/chromium

.PHONY: setup packages venv run test lint clean-test

setup: packages venv
	$(PY) manage.py setup

packages:
	@missing=""; for probe in $(PACKAGE_PROBES); do \
		pkg=$${probe%%:*}; path=$${probe#*:}; \
		[ -e "$$path" ] || missing="$$missing $$pkg"; \
	done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq $$missing; \
	fi
	@# docker-compose Recommends docker.io: without recommends, so no Docker daemon lands on the machine.
	@if [ ! -e /usr/bin/docker-compose ]; then \
		echo "installing: docker-compose (without recommends)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

# `berth` is the thin client (engine/cli/thin.py): it answers through a running API server and execs
# `manage.py berth` otherwise. -S -P: no site-packages and no script directory on sys.path (it needs
# neither, and both cost start-up time).
$(VENV)/bin/berth: $(VENV)/.installed Makefile
	printf '#!%s/$(VENV)/bin/python -SP\nimport sys\nsys.path.insert(0, "%s")\nfrom engine.cli.thin import main\nsys.exit(main())\n' "$(CURDIR)" "$(CURDIR)" > $@
	chmod +x $@

venv: $(VENV)/.installed $(VENV)/bin/berth

# The Docker API socket ($(BERTH_RUN)/docker.sock) runs beside the dashboard and stops with it.
run: setup
	$(PY) manage.py berth serve-api & api=$$!; \
	trap 'kill $$api 2>/dev/null; wait $$api' EXIT INT TERM; \
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) dashboard.asgi:application

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy engine dashboard

test: setup lint
	$(VENV)/bin/pytest
