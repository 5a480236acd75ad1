# The shop: serverless-style Go functions on the real Dapr sidecar.
# `make help` lists every target.

SHELL        := /bin/bash
DAPR_VERSION := 1.18.2
MAILPIT_VERSION := v1.33.1
DAPRD        := bin/daprd-$(DAPR_VERSION)/daprd
SENTRY       := bin/sentry-$(DAPR_VERSION)/sentry
SHOP         := bin/shop
GO_TEST_FLAGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(DAPRD): deploy/daprd/go.mod deploy/daprd/go.sum $(wildcard deploy/daprd/*.go)
	@echo "building daprd $(DAPR_VERSION) (stable components + smtp) into $(DAPRD); the first build downloads ~2 GB of modules"
	cd deploy/daprd && go build -mod=readonly -tags stablecomponents \
	  -ldflags "-X github.com/dapr/dapr/pkg/buildinfo.version=$(DAPR_VERSION)" -o $(abspath $(DAPRD)) .
	@$(DAPRD) --version

.PHONY: daprd
daprd: $(DAPRD) ## build the pinned daprd once (cached under bin/, keyed by version)

# Sentry, Dapr's certificate authority, from the same pinned module as daprd:
# seconds once daprd's modules are cached.
$(SENTRY): deploy/daprd/go.mod deploy/daprd/go.sum
	@echo "building sentry $(DAPR_VERSION) into $(SENTRY)"
	cd deploy/daprd && go build -mod=readonly \
	  -ldflags "-X github.com/dapr/dapr/pkg/buildinfo.version=$(DAPR_VERSION)" -o $(abspath $(SENTRY)) github.com/dapr/dapr/cmd/sentry

.PHONY: sentry
sentry: $(SENTRY) ## build the pinned sentry (Dapr's CA, for mTLS across hosts) once (cached under bin/, keyed by version)

KUBE_VERSION := 1.34.2
KUBE_BIN     := bin/kube-$(KUBE_VERSION)

$(KUBE_BIN)/kube-apiserver: deploy/kube/build.sh
	deploy/kube/build.sh $(KUBE_VERSION) $(abspath $(KUBE_BIN))

.PHONY: kube-apiserver
kube-apiserver: $(KUBE_BIN)/kube-apiserver ## build kube-apiserver and kubectl from the k8s.io/kubernetes module (cached under bin/, keyed by version)

# The one-node cluster of `make test-kube` (docs/kubernetes.md): the node's
# Kubernetes commands and the pause process from the same module, Dapr's
# control plane from the pinned dapr module, Helm (to render Dapr's own
# chart) and CoreDNS (the cluster's DNS) from their modules. Each is cached
# under bin/ by version.
HELM_VERSION    := v3.21.4
COREDNS_VERSION := $(shell cat deploy/kube/coredns-version)
DAPR_BIN        := bin/dapr-$(DAPR_VERSION)
KUBE_NODE_CMDS  := kube-controller-manager kube-scheduler kubelet kube-proxy pause
DAPR_CP_CMDS    := operator injector placement scheduler

# Each stamp is written once every command of its set is built, so a set
# that failed half-way is built again.
$(KUBE_BIN)/.node-built: deploy/kube/build.sh
	deploy/kube/build.sh $(KUBE_VERSION) $(abspath $(KUBE_BIN)) $(KUBE_NODE_CMDS)
	touch $@

$(DAPR_BIN)/.built: deploy/kube/build-dapr.sh
	deploy/kube/build-dapr.sh $(DAPR_VERSION) $(abspath $(DAPR_BIN)) $(DAPR_CP_CMDS)
	touch $@

bin/helm-$(HELM_VERSION)/helm:
	GOBIN=$(abspath bin/helm-$(HELM_VERSION)) CGO_ENABLED=0 go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

bin/coredns-$(COREDNS_VERSION)/coredns: deploy/kube/coredns-version
	GOBIN=$(abspath bin/coredns-$(COREDNS_VERSION)) CGO_ENABLED=0 go install github.com/coredns/coredns@$(COREDNS_VERSION)

.PHONY: kube
kube: daprd sentry mailpit-bin build kube-apiserver $(KUBE_BIN)/.node-built $(DAPR_BIN)/.built bin/helm-$(HELM_VERSION)/helm bin/coredns-$(COREDNS_VERSION)/coredns ## build everything the one-node Kubernetes cluster runs (cached under bin/, keyed by version)

.PHONY: test-kube
test-kube: kube ## the shop on a one-node Kubernetes cluster with Dapr's control plane, built from source (root; ~4 min once built): the seed's flow, a load with its audit, pods deleted under load, mTLS and access control
	KUBE_VERSION=$(KUBE_VERSION) DAPR_VERSION=$(DAPR_VERSION) HELM_VERSION=$(HELM_VERSION) \
	  go test -tags kube -count=1 -timeout 45m -run TestKube -v ./e2e/

.PHONY: build
build: ## build the shop binary into bin/shop: static, as the Dockerfile builds it
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(SHOP) ./cmd/shop

.PHONY: examples
examples: ## build the example apps (examples/*) into bin/examples/
	CGO_ENABLED=0 go build -trimpath -o bin/examples/ ./examples/...

.PHONY: run
run: daprd build ## run the whole shop embedded: one app, one daprd on :3500, SQLite + in-memory pub/sub, files in ./data
	mkdir -p data
	$(SHOP) run -f deploy/dapr-embedded.yaml

.PHONY: run-redis
run-redis: daprd build ## run the seed's topology: three apps, three daprds, Redis state and pub/sub
	mkdir -p data
	$(SHOP) run -f deploy/dapr.yaml

.PHONY: run-hosts
run-hosts: daprd sentry build ## run the shop across hosts (root: network namespaces): Redis, sentry, two app hosts with a replica of each app, mTLS and access control
	mkdir -p data
	$(SHOP) run -f deploy/dapr-hosts.yaml

.PHONY: run-postgres
run-postgres: daprd build ## three apps with PostgreSQL state, RabbitMQ pub/sub and PostgreSQL order storage
	mkdir -p data
	$(SHOP) run -f deploy/dapr-postgres.yaml

.PHONY: run-smtp
run-smtp: daprd build ## three apps on Redis, emails over SMTP to mailpit (run `make mailpit` first)
	mkdir -p data
	$(SHOP) run -f deploy/dapr-smtp.yaml

MAILPIT := bin/mailpit

$(MAILPIT):
	GOBIN=$(abspath bin) go install github.com/axllent/mailpit@$(MAILPIT_VERSION)

.PHONY: mailpit-bin
mailpit-bin: $(MAILPIT) ## build mailpit (a Go SMTP server with an HTTP API) into bin/

.PHONY: mailpit
mailpit: $(MAILPIT) ## run mailpit (SMTP :1025, web and API :8025) for the smtp email component
	$(MAILPIT) --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025

# Every decoder's fuzz target, as package:Name.
FUZZ_TARGETS := \
  ./runtime:FuzzDecodeCloudEvent ./runtime:FuzzInvokeDecoding ./runtime:FuzzDuplicateKey \
  ./functions/order:FuzzCreateRequest ./functions/notification:FuzzOrderEvent \
  ./functions/inventory:FuzzInventoryRequests ./functions/inventory:FuzzParseCatalog \
  ./functions/orderevent:FuzzLookupRequest \
  ./internal/launch:FuzzParse
# Budgets are input counts, not durations: go1.26's fuzz coordinator can fail
# a target with "context deadline exceeded" when a -fuzztime duration ends
# while a worker is busy on a loaded machine (go.dev/issue/75804, fixed in
# go1.27); a count has no deadline to race.
FUZZ_SMOKE ?= 20000x
FUZZ_TIME  ?= 500000x
STATICCHECK_VERSION := v0.8.2

.PHONY: test
test: daprd sentry mailpit-bin kube-apiserver ## gofmt, vet, staticcheck, unit and end-to-end tests (-race) against real daprd, then each fuzzer on 20000 inputs
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-ed (run gofmt -w on them):"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go test -race -count=1 $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SMOKE)

.PHONY: test-unit
test-unit: ## unit tests only (no daprd needed)
	go test -race -count=1 $$(go list ./... | grep -v /e2e)

.PHONY: bench
bench: daprd build ## micro-benchmarks and the load benchmark; writes bench/out/
	go run ./bench/cmd/loadbench

.PHONY: fuzz
fuzz: ## run each decoder's fuzzer on FUZZ_TIME inputs (500000x); a failure fails the target
	@set -eo pipefail; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} ($${t%%:*}) on $(FUZZ_TIME) inputs"; \
	  go test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZ_TIME) $${t%%:*} | grep -v '^fuzz: elapsed'; \
	done

.PHONY: clean
clean: ## remove build outputs and ./data (keeps the daprd cache)
	rm -rf $(SHOP) data bench/out
