package awskms

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// The KMS emulator the harness installs when no endpoint is given.
const (
	// EmulatorModule is the main package of the emulator.
	EmulatorModule = "github.com/nsmithuk/local-kms"

	// EmulatorVersion pins the emulator: the module proxy's pseudo-version
	// for commit 2a5e92d09ab6 of 2026-02-28, the newest it serves. The
	// harness relies on this build's behaviour (PORT, KMS_* settings,
	// UpdateAlias, ARNs in Decrypt answers, no signature checks); change it
	// on purpose and rerun the self-test.
	EmulatorVersion = "v0.0.0-20260228092603-2a5e92d09ab6"
)

// installTimeout bounds one `go install` of the emulator. A cold module
// cache downloads aws-sdk-go and compiles it, which takes a few minutes on
// a two-core machine; ten is enough headroom without hanging a stuck run.
const installTimeout = 10 * time.Minute

// install serialises installs within this test binary and remembers the
// result, so a failed install is reported once per test, not retried.
var install struct {
	mu   sync.Mutex
	path string
	err  error
	done bool
}

// cacheDir returns the directory the harness keeps installed tools in:
// $BROKER_E2E_CACHE, or kmsbroker-e2e in the user's cache directory. It is
// outside the repository so a clean checkout stays clean.
func cacheDir() (string, error) {
	if dir := os.Getenv(EnvCache); dir != "" {
		return filepath.Abs(dir)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory (set %s): %w", EnvCache, err)
	}
	return filepath.Join(base, "kmsbroker-e2e"), nil
}

// emulatorBinary returns the path of the emulator at EmulatorVersion,
// installing it with `go install` first when the cache lacks it or holds
// another version. A file lock keeps concurrent test binaries from
// installing over each other.
func emulatorBinary() (string, error) {
	install.mu.Lock()
	defer install.mu.Unlock()
	if !install.done {
		install.path, install.err = installEmulator()
		install.done = true
	}
	return install.path, install.err
}

func installEmulator() (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", fmt.Errorf("install local-kms: %w", err)
	}
	binDir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("install local-kms: %w", err)
	}
	bin := filepath.Join(binDir, "local-kms")

	unlock, err := lockFile(filepath.Join(binDir, ".local-kms.lock"))
	if err != nil {
		return "", fmt.Errorf("install local-kms: %w", err)
	}
	defer unlock()

	if installedVersion(bin) == EmulatorVersion {
		return bin, nil
	}

	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("install local-kms: no go command to install it with (or set %s): %w",
			EnvAWSEndpoint, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "install", EmulatorModule+"@"+EmulatorVersion)
	// Outside any module and workspace, so the repository's go.mod plays
	// no part; the emulator is pure Go.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("install local-kms: go install %s@%s: %w\n%s",
			EmulatorModule, EmulatorVersion, err, out)
	}
	if got := installedVersion(bin); got != EmulatorVersion {
		return "", fmt.Errorf("install local-kms: %s reports version %q after install, want %q",
			bin, got, EmulatorVersion)
	}
	return bin, nil
}

// installedVersion returns the module version recorded in the binary at
// path when it is a build of EmulatorModule, and "" otherwise (missing,
// unreadable, or another program).
func installedVersion(path string) string {
	info, err := buildinfo.ReadFile(path)
	if err != nil || info.Main.Path != EmulatorModule {
		return ""
	}
	return info.Main.Version
}

// lockFile takes an exclusive advisory lock on path, creating it, and
// returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
