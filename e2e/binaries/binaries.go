// Package binaries builds the product's programs for end-to-end tests:
// brokerd and the plugins, each once per test binary, into one temporary
// directory laid out as brokerd expects (plugins beside it).
//
// A test package that uses it calls Run from TestMain, which owns the
// directory and removes it when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(binaries.Run(m)) }
package binaries

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Names of the product's programs, as `make build` writes them to bin/.
const (
	Brokerd      = "brokerd"
	PluginPrefix = "kmsbroker-plugin-"
)

// Plugins are the built-in plugin types; the program for type T is built
// from ./plugins/T as PluginPrefix+T.
var Plugins = []string{"aead", "awskms", "transit"}

// buildTimeout bounds one `go build`. With a cold build cache on a
// two-core machine brokerd and its dependencies take a few minutes; ten
// is headroom without hanging a stuck run.
const buildTimeout = 10 * time.Minute

// errNoRun is what Program fails with when TestMain did not call Run.
var errNoRun = errors.New("binaries: call os.Exit(binaries.Run(m)) from TestMain first")

// state is the output directory and what was built into it.
var state struct {
	mu     sync.Mutex
	dir    string // set by Run
	root   string // the module root, found on first build
	builds map[string]*build
}

// build is one program, built at most once.
type build struct {
	pkg  string
	once sync.Once
	path string
	err  error
}

// Layout is a directory holding brokerd and every plugin.
type Layout struct {
	// Dir is the directory; brokerd finds the plugins here by default.
	Dir string
	// Brokerd is the path of the brokerd executable.
	Brokerd string
	// Plugins maps each plugin type to its executable.
	Plugins map[string]string
}

// Run creates the output directory, runs the tests and removes the
// directory. It returns m.Run's exit code, or 1 if the directory could not
// be made.
func Run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kmsbroker-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "binaries: make output directory: %v\n", err)
		return 1
	}
	state.mu.Lock()
	state.dir = dir
	state.builds = map[string]*build{}
	state.mu.Unlock()

	code := m.Run()

	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "binaries: remove %s: %v\n", dir, err)
	}
	return code
}

// Product builds brokerd and every plugin and returns where they are. It
// fails the test if any of them does not build.
func Product(t testing.TB) Layout {
	t.Helper()
	l := Layout{Brokerd: Program(t, "./cmd/brokerd", Brokerd), Plugins: map[string]string{}}
	l.Dir = filepath.Dir(l.Brokerd)
	for _, p := range Plugins {
		l.Plugins[p] = Program(t, "./plugins/"+p, PluginPrefix+p)
	}
	return l
}

// Program builds the main package pkg, a path relative to the module root
// such as "./plugins/aead", as name in the output directory and returns
// the executable's path. The first call builds; later calls, from any
// test, return the same path or the same error. It fails the test if the
// package does not build or name was already used for another package.
func Program(t testing.TB, pkg, name string) string {
	t.Helper()
	path, err := program(pkg, name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func program(pkg, name string) (string, error) {
	state.mu.Lock()
	if state.dir == "" {
		state.mu.Unlock()
		return "", errNoRun
	}
	b, ok := state.builds[name]
	if !ok {
		b = &build{pkg: pkg}
		state.builds[name] = b
	}
	dir := state.dir
	state.mu.Unlock()

	if b.pkg != pkg {
		return "", fmt.Errorf("binaries: build %s as %s: the name is taken by %s", pkg, name, b.pkg)
	}
	b.once.Do(func() { b.path, b.err = goBuild(dir, pkg, name) })
	return b.path, b.err
}

// goBuild runs `go build` the way `make build` does: no cgo, paths
// trimmed.
func goBuild(dir, pkg, name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("binaries: build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("binaries: go build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}

// moduleRoot returns the directory of the go.mod that governs the test's
// working directory, asking the go command once.
func moduleRoot() (string, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.root != "" {
		return state.root, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find module root: not inside a Go module")
	}
	state.root = filepath.Dir(gomod)
	return state.root, nil
}
