package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"

	"github.com/hashicorp/go-plugin/runner"
)

// seenLimit is how much of a plugin's early stdout and late stderr is kept
// for error messages: enough to recognise a stray banner or a one-line
// crash reason, small enough to quote in one log line.
const seenLimit = 256

// process runs one plugin executable for go-plugin (runner.Runner). It
// differs from go-plugin's own runner in four ways that the host needs:
// the child gets its own process group and dies with the host (see
// sysproc_*.go), Kill kills the whole group, the first bytes of stdout and
// the last of stderr are kept for error messages, and exited is closed as
// soon as the process has been reaped.
type process struct {
	cmd    *exec.Cmd
	path   string // the executable as configured; cmd.Path may differ
	stdout io.ReadCloser
	stderr io.ReadCloser
	head   *headBuffer
	tail   *tailBuffer

	exited chan struct{}

	mu    sync.Mutex
	pid   int
	state *os.ProcessState
}

var _ runner.Runner = (*process)(nil)

func newProcess() *process {
	return &process{
		head:   &headBuffer{},
		tail:   &tailBuffer{},
		exited: make(chan struct{}),
	}
}

// prepare sets up the command; go-plugin calls it (through RunnerFunc)
// once it knows the handshake environment. When pinned is the open,
// verified executable, the process is started from that open file rather
// than from path, so the bytes that were hashed are the bytes that run
// even if the file at path is replaced in between (see execPinned).
func (p *process) prepare(path string, env []string, pinned *os.File) error {
	cmd := exec.Command(path)
	if pinned != nil {
		if fdPath, ok := execPinned(); ok {
			cmd.Path = fdPath
			cmd.ExtraFiles = []*os.File{pinned}
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	p.cmd = cmd
	p.path = path
	p.stdout = readCloser{io.TeeReader(stdout, p.head), stdout}
	p.stderr = readCloser{io.TeeReader(stderr, p.tail), stderr}
	return nil
}

// Start starts the process from a goroutine locked to its OS thread and
// keeps that thread until the process has been reaped. On Linux the
// parent-death signal follows the thread that forked, not the process,
// and the Go runtime may end a thread; pinning it makes the signal fire
// only when the host itself dies.
func (p *process) Start(context.Context) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := p.cmd.Start()
		// The child holds its own copy of a pinned executable's file.
		for _, f := range p.cmd.ExtraFiles {
			_ = f.Close()
		}
		started <- err
		if err == nil {
			<-p.exited
		}
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		close(p.exited)
		return err
	}
	p.mu.Lock()
	p.pid = p.cmd.Process.Pid
	p.mu.Unlock()
	return nil
}

// Wait reaps the process. go-plugin calls it once, after both pipes are
// drained.
func (p *process) Wait(context.Context) error {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.state = p.cmd.ProcessState
	p.mu.Unlock()
	close(p.exited)
	return err
}

// Kill kills the process group, so helpers the plugin started die too.
func (p *process) Kill(context.Context) error {
	p.mu.Lock()
	pid := p.pid
	p.mu.Unlock()
	if pid == 0 {
		return nil
	}
	killGroup(pid)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (p *process) Stdout() io.ReadCloser { return p.stdout }
func (p *process) Stderr() io.ReadCloser { return p.stderr }
func (p *process) Name() string          { return p.path }

// headBytes is the first stdout the process wrote, up to seenLimit.
func (p *process) headBytes() []byte { return p.head.bytes() }

// ID is the pid, or "" before Start (go-plugin's Kill skips a runner
// without one).
func (p *process) ID() string {
	if pid := p.Pid(); pid != 0 {
		return strconv.Itoa(pid)
	}
	return ""
}

// Pid is the process id, 0 before Start.
func (p *process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Diagnose is called by go-plugin when the handshake line is unreadable;
// the host builds its own message from what it saw, so this adds nothing.
func (p *process) Diagnose(context.Context) string { return "" }

func (p *process) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// exitState is the reaped process's state, nil while it runs.
func (p *process) exitState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

type readCloser struct {
	io.Reader
	io.Closer
}

// headBuffer keeps the first seenLimit bytes written to it.
type headBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (h *headBuffer) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := seenLimit - len(h.buf); room > 0 {
		h.buf = append(h.buf, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

func (h *headBuffer) bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return bytes.Clone(h.buf)
}

// tailBuffer keeps the last seenLimit bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - seenLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

// lastLine is the last non-empty line written, possibly cut at its start.
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimRight(t.buf, "\r\n"), []byte("\n"))
	return string(bytes.TrimSpace(lines[len(lines)-1]))
}
