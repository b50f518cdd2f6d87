package keyring

import "fmt"

// DataPurpose names one of a scope's data keys (DEKs). Each purpose has its
// own key versions, so data of one kind cannot be opened as another.
type DataPurpose string

// The data purposes. Their codes are written into every envelope and may
// never change.
const (
	Database DataPurpose = "database" // code 1
	Oplog    DataPurpose = "oplog"    // code 2
	Tokens   DataPurpose = "tokens"   // code 3
	Sessions DataPurpose = "sessions" // code 4
)

var purposes = [...]DataPurpose{Database, Oplog, Tokens, Sessions}

// numPurposes sizes per-purpose arrays indexed by code (index 0 unused).
const numPurposes = len(purposes)

// DataPurposes lists the data purposes in code order.
func DataPurposes() []DataPurpose { return purposes[:] }

// ParseDataPurpose returns the data purpose named s, or an error wrapping
// ErrUnknownDataPurpose.
func ParseDataPurpose(s string) (DataPurpose, error) {
	p := DataPurpose(s)
	if p.code() == 0 {
		return "", fmt.Errorf("%w %q (valid: database, oplog, tokens, sessions)",
			ErrUnknownDataPurpose, s)
	}
	return p, nil
}

// String returns the purpose's name.
func (p DataPurpose) String() string { return string(p) }

// code returns the purpose's envelope code, or 0 for an unknown purpose.
func (p DataPurpose) code() byte {
	for i, q := range purposes {
		if p == q {
			return byte(i + 1)
		}
	}
	return 0
}
