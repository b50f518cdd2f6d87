// Command noopplugin is the bare go-plugin program that brokerbench's
// plugin round trip is measured against: it serves a wrapper service that
// does nothing (package noop). make bench builds it beside brokerbench.
package main

import "github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/noop"

func main() {
	noop.Serve()
}
