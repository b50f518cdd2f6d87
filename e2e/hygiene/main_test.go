// Package hygiene checks that no secret a broker handles ever shows up in
// what it writes or answers: logs, the audit log, status, metrics and
// error messages.
package hygiene

import (
	"os"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/binaries"
)

// TestMain gives the tests one directory of built binaries: brokerd with
// the plugins beside it, as `make build` lays them out.
func TestMain(m *testing.M) { os.Exit(binaries.Run(m)) }
