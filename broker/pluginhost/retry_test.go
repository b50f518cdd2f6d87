package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A call that timed out is not repeated: a hung plugin would hold the
// caller for twice the block's timeout.
func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"process lost", fmt.Errorf("encrypt: %w: connection lost", ErrUnavailable), true},
		{"deadline used up", fmt.Errorf("encrypt: %w: no answer: %w", ErrUnavailable, context.DeadlineExceeded), false},
		{"refused input", errors.New("encrypt: plugin refused: bad"), false},
		{"decrypt failed", ErrDecrypt, false},
	}
	for _, tc := range tests {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("%s: Retryable = %t, want %t", tc.name, got, tc.want)
		}
	}
}
