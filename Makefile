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

## test: vet, then every test with the race detector
test: build
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

## e2e: the end-to-end suite only
e2e: build
	$(GO) test $(TESTFLAGS) -v ./e2e/...

## fuzz: every fuzz target for FUZZTIME each (default 15s)
fuzz:
	FUZZTIME=$(or $(FUZZTIME),15s) ./scripts/fuzz.sh

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
