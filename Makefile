# huntmesh: build, test and demo. Run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
BIN      := bin/huntmesh
# Build flags for cgo (go-yara needs libyara through pkg-config).
export CGO_ENABLED := 1

.PHONY: help deps build test test-short demo bench fuzz lint tidy-check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install what Go modules do not bring (libyara-dev, pkg-config, yara) with apt-get
	@missing=(); \
	dpkg -s libyara-dev >/dev/null 2>&1 || missing+=(libyara-dev); \
	dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config); \
	command -v yara >/dev/null 2>&1 || missing+=(yara); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing: $${missing[*]}"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq "$${missing[@]}" >/dev/null; \
	fi

build: deps ## build bin/huntmesh
	$(GO) build -o $(BIN) .

test: deps ## run every test (what CI runs)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 12m ./...

test-short: deps ## run the fast tests only
	$(GO) test -count=1 -short ./...

demo: build ## three nodes on 127.0.0.1 hunt a stand-in miner on this host
	./demo/demo.sh

bench: build ## benchmarks with yardsticks, idle node footprint, sim; report in bench-report.txt
	./scripts/bench.sh

FUZZTIME ?= 30s
fuzz: deps ## run every fuzz target (decoders of hostile input) for FUZZTIME (30s) each
	@for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' "$$pkg" | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$fn"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) "$$pkg" || exit 1; \
	  done; \
	done

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

tidy-check: ## fail when go.mod or go.sum drift from the code
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean: ## remove build and demo output
	rm -rf bin .demo bench-report.txt
