# kmsbroker build, run and test entry points. Tool versions are pinned in
# tools/go.mod; everything installs through the Go module proxy.

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLBIN   := $(CURDIR)/.tools/bin
PLUGINS   := aead awskms transit
LISTEN    ?= 127.0.0.1:9200
TESTFLAGS ?= -race -count=1 -timeout=20m

export CGO_ENABLED ?= 1

.PHONY: all build run test e2e fuzz proto tools fmt vet clean

all: build

## build: brokerd and the built-in plugins into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/brokerd ./cmd/brokerd
	@for p in $(PLUGINS); do \
		echo "CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kmsbroker-plugin-$$p ./plugins/$$p"; \
		CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kmsbroker-plugin-$$p ./plugins/$$p || exit 1; \
	done

## run: build, then start brokerd in dev mode
run: build
	$(BIN)/brokerd dev -listen=$(LISTEN)

## test: vet, then every test with the race detector: the unit and
## integration tests, then the end-to-end suite with its summary line
test: build
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v '/e2e')
	$(MAKE) --no-print-directory e2e

## e2e: the end-to-end suite only, then one summary line that says which
## KMS servers were real (from the harness's "e2e:" lines) and which tests
## failed or skipped; the exit status is go test's
e2e: build
	@out=$$(mktemp); \
	{ $(GO) test $(TESTFLAGS) -v ./e2e/... 2>&1; echo $$? >$$out.rc; } | tee $$out; \
	rc=$$(cat $$out.rc); \
	awk ' \
	  function names(set,  k, s) { s = ""; for (k in set) s = s (s == "" ? "" : ", ") k; return s }; \
	  /e2e: AWS KMS API: / { s = $$0; sub(/.*e2e: AWS KMS API: /, "", s); sub(/ at .*/, "", s); aws[s] = 1 }; \
	  /e2e: Vault: / { s = $$0; sub(/.*e2e: Vault: /, "", s); sub(/ at .*/, "", s); vault[s] = 1 }; \
	  /e2e: SKIP Vault transit:/ { novault = 1 }; \
	  /^--- PASS: / { pass++ }; \
	  /^--- FAIL: / { fail++ }; \
	  /^ *--- FAIL: / { failed[$$3] = 1 }; \
	  /^ *--- SKIP: / { skipped[$$3] = 1; skips++ }; \
	  END { \
	    a = names(aws); if (a == "") a = "not started"; \
	    v = names(vault); if (v == "") v = novault ? "none found (put vault or bao on PATH, or set VAULT_ADDR and VAULT_TOKEN), so its tests skipped" : "not started"; \
	    printf "e2e summary: real AWS KMS API: %s; real Vault: %s; tests: %d passed, %d failed", a, v, pass, fail; \
	    if (fail) printf " (%s)", names(failed); \
	    printf ", %d skipped", skips; \
	    if (skips) printf " (%s)", names(skipped); \
	    printf "\n" \
	  }' $$out; \
	rm -f $$out $$out.rc; \
	exit $$rc

## fuzz: every fuzz target for FUZZTIME each (default 15s)
fuzz:
	FUZZTIME=$(or $(FUZZTIME),15s) ./scripts/fuzz.sh

## bench: build, then measure kmsbroker beside its baselines into BENCHMARKS.md
bench: build
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/brokerbench ./cmd/brokerbench
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/brokerbench-noop-plugin ./cmd/brokerbench/noopplugin
	$(BIN)/brokerbench -bin=$(BIN) -out=$(CURDIR)/BENCHMARKS.md $(BENCHFLAGS)

## tools: the pinned code generators into .tools/bin
tools:
	@mkdir -p $(TOOLBIN)
	cd tools && $(GO) build -o $(TOOLBIN)/ \
		github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway

## proto: regenerate the committed Go code from proto/
proto: tools
	PATH=$(TOOLBIN):$$PATH $(TOOLBIN)/buf generate
	PATH=$(TOOLBIN):$$PATH $(TOOLBIN)/buf generate --template buf.gen.gateway.yaml --path proto/api

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
