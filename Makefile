# Roost: `make up` runs the platform, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# npm packages are installed again only when the lock file changes; the bundle is rebuilt
# when a source asset, the build script or the packages change.
NODE_STAMP := node_modules/.installed
DIST := frontend/static/frontend/dist
ASSETS_STAMP := $(DIST)/.built

.PHONY: up test install assets system-deps lint typecheck bench clean

up: install
	$(PY) manage.py up

test: install system-deps
	ROOST_ENV=test ROOST_DATA_DIR=$${ROOST_DATA_DIR:-$(CURDIR)/var/test} $(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP) assets

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat mode puts the checkout on sys.path, which Django's app loading needs.
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

# Browser assets (htmx, Pico CSS, MQTT.js, uPlot) from npm, bundled by esbuild: no CDN at run time.
assets: $(ASSETS_STAMP)

$(NODE_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(ASSETS_STAMP): $(NODE_STAMP) frontend/build.mjs $(wildcard frontend/assets/*.js frontend/assets/*.css frontend/assets/*/*.js)
	npm run --silent build
	touch $(ASSETS_STAMP)

# Debian packages the tests use as real peers (mosquitto clients, openssl, Chromium for the
# browser tests: Playwright drives Debian's /usr/bin/chromium, it never downloads a browser).
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy roost devices acl pki frontend broker

bench: install $(VENV)/.bench-installed
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/import_bench.py
	$(PY) bench/api_devices.py --postgres
	$(PY) bench/mqtt_ws.py

$(VENV)/.bench-installed: pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]' --config-settings editable_mode=compat
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache node_modules $(DIST)
