# fleetops — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TEMPORAL_VERSION := v1.5.1
STATICCHECK_VERSION := v0.6.0
WORKFLOWCHECK_VERSION := v0.6.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
DATA_DIR ?= .fleetops
LISTEN ?= 127.0.0.1:8080
# PostgreSQL for the store/API/e2e suites; CI sets it, and so does this
# default when a server answers on the usual local port.
FLEETOPS_TEST_POSTGRES_URL ?= $(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
export FLEETOPS_TEST_POSTGRES_URL
FUZZTIME ?= 10s
TEST_TIMEOUT ?= 20m

.PHONY: help run build test test-short fuzz bench lint ui clean tools

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: $(BIN)/temporal ## build bin/fleetops, bin/fleetops-agent and bin/temporal
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fleetops ./cmd/fleetops
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/fleetops-agent ./cmd/fleetops-agent

$(BIN)/temporal: ## the pinned Temporal CLI (dev server)
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

run: build ## start the embedded stack: Temporal dev server, server, worker, local agent
	$(BIN)/fleetops dev --data-dir $(DATA_DIR) --listen $(LISTEN)

test: build ## run the whole suite (race detector on; PostgreSQL when reachable)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=5s

test-short: ## unit tests only
	$(GO) test -race -short ./...

fuzz: ## short fuzz runs of every parser
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

BENCH_TIMEOUT ?= 60m

bench: build ## load benchmarks of the embedded stack, one run each (figures in BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout $(BENCH_TIMEOUT) ./internal/e2e/

lint: ## gofmt, go vet, staticcheck, workflowcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) run go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION) ./workflows/...

clean: ## remove build output (not the dev data dir)
	rm -rf $(BIN)/fleetops $(BIN)/fleetops-agent
