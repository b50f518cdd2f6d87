// Package proc runs the servers an end-to-end test needs as child processes
// that cannot outlive the test.
//
// Each process gets its own process group, and on Linux the kernel kills it
// when the test binary dies (Pdeathsig), so a crashed or timed-out test
// leaves no KMS emulator or dev Vault behind. Output goes to a log file in
// the test's temporary directory and its tail is written to the test log
// when the test fails.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL.
// The servers started here shut down in well under a second; one that takes
// longer is hung, and a test should not wait on it.
const StopTimeout = 10 * time.Second

// probeInterval is the pause between readiness probes: short enough that a
// test starts as soon as its server does, long enough not to spin a core.
const probeInterval = 100 * time.Millisecond

// probeTimeout bounds one readiness probe so that a server which accepts a
// connection but never answers cannot stall WaitReady past its deadline.
const probeTimeout = 2 * time.Second

// tailLines is how much of a process's output a failing test shows; the
// whole log stays in the test's temporary directory until cleanup.
const tailLines = 40

// ErrExited is returned by WaitReady when the process exits before it is
// ready.
var ErrExited = errors.New("process exited")

// Process is a running child process owned by one test.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string

	done chan struct{}
	err  error // the result of Wait; read only after done is closed

	stopOnce sync.Once
}

// Start starts cmd as the server called name and ties its life to t: the
// process is stopped in t.Cleanup, and its output (stdout and stderr
// together) is logged when t fails. cmd must not have been started and must
// not set Stdout, Stderr or SysProcAttr; Start owns them. Start fails the
// test if the process cannot be started.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	if cmd.Stdout != nil || cmd.Stderr != nil || cmd.SysProcAttr != nil {
		t.Fatalf("proc: start %s: Stdout, Stderr and SysProcAttr must be unset", name)
	}

	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("proc: start %s: %v", name, err)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()

	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("proc: start %s: %v", name, err)
	}

	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()

	// Cleanups run last-in first-out: stop the process, then show its
	// output if the test failed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proc: %s output (last %d lines of %s):\n%s", name, tailLines, logPath, p.Tail(tailLines))
		}
	})
	t.Cleanup(p.Stop)
	return p
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited: nil for status 0, otherwise the error
// from exec.Cmd.Wait. It must be called only after Done is closed.
func (p *Process) Err() error { return p.err }

// LogPath returns the file that holds the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Tail returns at most the last n lines of the process's output.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitReady calls probe until it returns nil, the process exits or ctx is
// done. Each call gets its own short deadline. The error names the server
// and carries the last probe error; when the process exited it wraps
// ErrExited and includes the tail of its output.
func (p *Process) WaitReady(ctx context.Context, probe func(context.Context) error) error {
	ticker := time.NewTicker(probeInterval)
	defer ticker.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("wait for %s: %w (%v) before it was ready; output:\n%s",
				p.name, ErrExited, p.err, p.Tail(tailLines))
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: not ready: %w; last probe: %v", p.name, ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

// Stop sends SIGTERM to the process group, waits up to StopTimeout for the
// process to exit, then kills the group. It returns once the process has
// exited and is safe to call more than once and from several goroutines.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			// An error means the group is already gone.
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(StopTimeout):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.done
			}
		}
		// Children the server left behind share its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}
