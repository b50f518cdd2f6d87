// Package child runs the servers a benchmark talks to (brokerd, a Vault
// dev server) as child processes that cannot outlive the benchmark: each
// runs in its own process group, is killed by the kernel when the
// benchmark dies (Linux), and writes its output to a log file whose tail
// explains a failed start.
package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL: brokerd
// drains its API and stops its plugins well within it.
const stopGrace = 10 * time.Second

// tailBytes bounds the log excerpt quoted in errors.
const tailBytes = 2048

// Process is a running child.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // the exit status, valid once done is closed
}

// Start starts cmd with its output appended to logPath. name is used in
// errors. The caller must call Stop.
func Start(name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the child's process group, then SIGKILL after
// stopGrace, and waits for the child to exit. It is safe to call more
// than once. A child stopped this way is not an error.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	signalGroup(p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		signalGroup(p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// Tail returns the end of the child's log, for error messages.
func (p *Process) Tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

// pollInterval is how often WaitHTTP asks. Start-up times are reported in
// milliseconds, so the poll must be finer than that resolution's tens.
const pollInterval = 2 * time.Millisecond

// ErrExited means the child exited while it was being waited for.
var ErrExited = errors.New("process exited")

// WaitHTTP polls url with GET until it answers 200, the child exits, or
// ctx ends. The errors carry the tail of the child's log.
func (p *Process) WaitHTTP(ctx context.Context, client *http.Client, url string) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", p.name, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("wait for %s: %w (%v); log:\n%s", p.name, ErrExited, p.err, p.Tail())
		case <-ctx.Done():
			return fmt.Errorf("wait for %s at %s: %w; log:\n%s", p.name, url, ctx.Err(), p.Tail())
		case <-tick.C:
		}
	}
}
