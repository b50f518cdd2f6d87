package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid names a process that has not exited. A zombie
// has exited: in a container nothing may reap it.
func alive(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after %v, want it gone", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %s = %q: %v", path, b, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s not written", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		script string // $1 is a file the script writes a grandchild pid to
		slow   bool   // ignores SIGTERM, so Stop must escalate
	}{
		{name: "server exits on SIGTERM", script: `sleep 300 & echo $! > "$1"; wait`},
		{
			name:   "server ignores SIGTERM",
			script: `trap '' TERM; sleep 300 & echo $! > "$1"; while :; do sleep 1; done`,
			slow:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			p := Start(t, "sh", exec.Command("/bin/sh", "-c", tt.script, "sh", pidFile))
			child := readPid(t, pidFile)

			start := time.Now()
			p.Stop()
			took := time.Since(start)

			select {
			case <-p.Done():
			default:
				t.Fatal("Done() not closed after Stop returned")
			}
			waitGone(t, p.Pid(), 5*time.Second)
			waitGone(t, child, 5*time.Second)
			if tt.slow && took < StopTimeout {
				t.Errorf("Stop took %v for a process ignoring SIGTERM, want at least %v", took, StopTimeout)
			}
			if !tt.slow && took >= StopTimeout {
				t.Errorf("Stop took %v, want less than %v", took, StopTimeout)
			}
			p.Stop() // a second call returns at once
		})
	}
}

func TestWaitReady(t *testing.T) {
	errNotYet := errors.New("not yet")
	tests := []struct {
		name    string
		script  string // $1 is a file whose existence means ready
		timeout time.Duration
		wantErr error
		wantOut string // in the error text
	}{
		{
			name:    "ready",
			script:  `sleep 0.3; : > "$1"; sleep 300`,
			timeout: 10 * time.Second,
		},
		{
			name:    "exits first",
			script:  `echo first-words; echo last-words >&2; exit 3`,
			timeout: 10 * time.Second,
			wantErr: ErrExited,
			wantOut: "last-words",
		},
		{
			name:    "never ready",
			script:  `sleep 300`,
			timeout: 500 * time.Millisecond,
			wantErr: context.DeadlineExceeded,
			wantOut: errNotYet.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readyFile := filepath.Join(t.TempDir(), "ready")
			p := Start(t, "sh", exec.Command("/bin/sh", "-c", tt.script, "sh", readyFile))
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()

			err := p.WaitReady(ctx, func(context.Context) error {
				if _, err := os.Stat(readyFile); err != nil {
					return errNotYet
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WaitReady() = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantOut) {
				t.Errorf("WaitReady() error = %q, want it to contain %q", err, tt.wantOut)
			}
		})
	}
}

func TestTail(t *testing.T) {
	p := Start(t, "sh", exec.Command("/bin/sh", "-c", `for i in 1 2 3 4 5; do echo line$i; done`))
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	if got, want := p.Tail(2), "line4\nline5"; got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
}

func TestStartRejectsPresetOutput(t *testing.T) {
	cmd := exec.Command("/bin/true")
	cmd.Stdout = os.Stdout
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Start(ft, "true", cmd)
	}()
	if !ft.fataled {
		t.Fatal("Start with Stdout set did not fail the test")
	}
	if cmd.Process != nil {
		t.Error("Start with Stdout set started the process")
	}
}

// fatalRecorder notes a Fatalf instead of ending the test, so a test can
// check that Start refuses bad input.
type fatalRecorder struct {
	testing.TB
	fataled bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fataled = true
	panic("fatal")
}
