// Package audit writes the broker's security events as JSON lines.
//
// An event records who did what, where and with what result: recovery and
// worker authentications (accepted or rejected, and why), token creation
// and revocation, rotation, rewrap and destruction. Events carry ids and
// version numbers only; the package has no field that could hold a secret.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one audit line.
type Event struct {
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal,omitempty"`
	Operation  string    `json:"operation"`
	Scope      string    `json:"scope,omitempty"`
	KeyVersion uint32    `json:"key_version,omitempty"`
	// Target names what the operation acted on that is not a scope or a
	// version: a token id, a key version id.
	Target string `json:"target,omitempty"`
	// Result is "ok", "rejected" or "error".
	Result string `json:"result"`
	// Reason says why an event was rejected or failed.
	Reason string `json:"reason,omitempty"`
}

// Results of an event.
const (
	ResultOK       = "ok"
	ResultRejected = "rejected"
	ResultError    = "error"
)

// Log writes events. The zero value and a nil *Log discard them.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer
	now func() time.Time
}

// Open appends events to the file at path, created with mode 0600.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &Log{w: f, c: f, now: time.Now}, nil
}

// New writes events to w.
func New(w io.Writer) *Log { return &Log{w: w, now: time.Now} }

// Record writes e, stamping its time when unset. A failed write is
// returned: an operator who configured an audit log wants to know.
func (l *Log) Record(e Event) error {
	if l == nil || l.w == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	return nil
}

// Close closes the underlying file.
func (l *Log) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	return l.c.Close()
}
