# One entry point for people and CI: `make demo` (`make demo-piv`: onto a virtual PIV token), `make test`, `make bench`, `make screenshots`, `make mutants`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the station and its test suite run against (real middleware, not mocks).
APT_PACKAGES := pcscd vsmartcard-vpcd libpcsclite-dev softhsm2 opensc zbar-tools xvfb \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libegl1 libgl1 iproute2 util-linux \
	postgresql gnome-keyring dbus-daemon libengine-pkcs11-openssl openssl curl strace poppler-utils yubico-piv-tool
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# yubikey-manager, a witness of the virtual token in its own venv (never the station's dependency);
# tests/integration/test_virtual_token.py finds it there (or through $$YKMAN).
YKMAN_VENV := /opt/ykman-venv

.PHONY: setup apt venv witnesses test demo demo-piv bench screenshots mutants clean

setup: apt venv witnesses

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

witnesses: $(YKMAN_VENV)/bin/ykman

$(YKMAN_VENV)/bin/ykman:
	$(SUDO) $(PYTHON) -m venv $(YKMAN_VENV)
	$(SUDO) $(YKMAN_VENV)/bin/pip install -q 'yubikey-manager>=5.4,<6'

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/station demo

demo-piv: setup
	$(BIN)/station demo --target piv

# every bench/*.py in turn (issue: onto SoftHSM and onto a blank PIV token, cancel: cancel to idle per step, verify, card_read, ca, ui: GUI start and stall, phone: EST enrollments/s and latency vs a bare TLS handshake)
bench: setup
	$(BIN)/python -m bench

# every screen as PNG in docs/screenshots/ (offscreen; XVFB=1: under xvfb-run), at 100 %, and the main ones at 200 % (@2x)
screenshots: setup
	$(BIN)/python -m tools.screenshots $(if $(XVFB),--xvfb)
	$(BIN)/python -m tools.screenshots --scale 2 $(if $(XVFB),--xvfb)

# Break each rule in turn (in a copy of the tree) and check its tests notice; not part of `make test`.
mutants: setup
	$(BIN)/python -m tools.mutants $(RULES)

clean:
	rm -rf $(VENV) .pytest_cache bench/results.json
