package pluginhost

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrokenPlugins starts deliberately broken plugin programs and checks
// that each error names the block, the binary and what was seen.
func TestBrokenPlugins(t *testing.T) {
	tests := []struct {
		typ          string
		startTimeout time.Duration
		sentinel     error
		seen         []string
		maxTime      time.Duration
	}{
		{"noise", 0, ErrBadPlugin, []string{`wrote to stdout before the handshake: "starting the chatty plugin\n"`}, 10 * time.Second},
		{"exit", 0, ErrUnavailable, []string{"exited before the handshake (exit status 3)", `"fatal: the plugin cannot start"`}, 10 * time.Second},
		{"v2", 0, ErrBadPlugin, []string{"speaks plugin protocol version 2, this broker speaks 1"}, 10 * time.Second},
		{"silent", 700 * time.Millisecond, ErrUnavailable, []string{"no handshake within start timeout 700ms"}, 5 * time.Second},
		{"slow", slowStart / 2, ErrUnavailable, []string{"no handshake within start timeout 750ms"}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			start := time.Now()
			p, err := Start(context.Background(), Config{
				Name: "broken-" + tt.typ, Type: tt.typ, Directory: testBin,
				StartTimeout: tt.startTimeout, Logger: testLogger(t),
				Settings: map[string]string{"key": testKey},
			})
			elapsed := time.Since(start)
			if err == nil {
				p.Stop()
				t.Fatal("Start succeeded")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error does not wrap %v", tt.sentinel)
			}
			want := append([]string{`block "broken-` + tt.typ + `"`, filepath.Join(testBin, ExecutablePrefix+tt.typ)}, tt.seen...)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if elapsed > tt.maxTime {
				t.Errorf("Start took %s; want at most %s", elapsed, tt.maxTime)
			}
			if tt.startTimeout > 0 && elapsed < tt.startTimeout {
				t.Errorf("Start gave up after %s, before its start timeout %s", elapsed, tt.startTimeout)
			}
			exe := filepath.Join(testBin, ExecutablePrefix+tt.typ)
			if pids := processesRunning(t, exe); len(pids) > 0 {
				t.Errorf("failed start left %s running as pids %v", exe, pids)
			}
		})
	}
}

// TestSlowStartWithinTimeout: a start timeout longer than the plugin's
// start-up is honoured, not cut short.
func TestSlowStartWithinTimeout(t *testing.T) {
	start := time.Now()
	p := startPlugin(t, Config{
		Name: "slow", Type: "slow", Directory: testBin, StartTimeout: 4 * slowStart,
		Settings: map[string]string{"key": testKey}, Logger: testLogger(t),
	})
	if d := time.Since(start); d < slowStart {
		t.Errorf("Start returned after %s, before the plugin could have answered (%s)", d, slowStart)
	}
	if _, err := p.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Errorf("Encrypt: %v", err)
	}
}
