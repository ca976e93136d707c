# The web form in a real browser (issue 10). See tests/e2e/.
#   make e2e           Chromium + axe against the built function, chime-local and a local OpenID provider
#   make oidc-dev      the local OpenID provider alone on OIDC_PORT (default 9400)
#   make e2e-screenshots  after `make e2e`: copy the README's screenshots to docs/screenshots
#
# Debian's chromium is installed once (apt-get only when it is missing); Playwright
# is told to use it: no browser download. The function runs as the debug build
# `cargo test` already made, under a loopback Runtime API (tests/e2e/lambda_front.py).
# Output (screenshots of every state, logs): target/e2e/.

PYTHON ?= python3
E2E_VENV := .venv-e2e
E2E_STAMP := $(E2E_VENV)/.stamp
E2E_OUT ?= $(CURDIR)/target/e2e
OIDC_PORT ?= 9400

# The states the README shows (target/e2e/screenshots/<state>.png).
DOC_SCREENSHOTS := signed-out empty-form signed-in-as success error-too-long expired \
	forbidden no-js-sign-in-required signed-out-after-sign-out

.PHONY: e2e e2e-venv e2e-screenshots chromium oidc-dev

$(E2E_STAMP): requirements-e2e.txt
	$(PYTHON) -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/pip install --quiet --upgrade pip
	$(E2E_VENV)/bin/pip install --quiet -r requirements-e2e.txt
	touch $@
e2e-venv: $(E2E_STAMP)

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null; }

e2e: $(E2E_STAMP) chromium
	nice cargo build --quiet -p chime-onboard --bin chime-onboard
	nice cargo build --quiet -p chime-local --bin chime-local
	rm -rf $(E2E_OUT) && mkdir -p $(E2E_OUT)
	E2E_FUNCTION_BIN=$(CURDIR)/target/debug/chime-onboard \
	E2E_CHIME_LOCAL_BIN=$(CURDIR)/target/debug/chime-local \
	E2E_OUT=$(E2E_OUT) $(E2E_VENV)/bin/python tests/e2e/run.py

e2e-screenshots:
	@for s in $(DOC_SCREENSHOTS); do \
	  test -f $(E2E_OUT)/screenshots/$$s.png || { echo "no $$s.png: run make e2e first" >&2; exit 1; }; \
	  cp $(E2E_OUT)/screenshots/$$s.png docs/screenshots/; done

oidc-dev: $(E2E_STAMP)
	$(E2E_VENV)/bin/python scripts/oidc_dev.py --port $(OIDC_PORT)
