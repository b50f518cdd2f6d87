package plugintest

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the main package pkg (for example "./plugins/aead",
// relative to the root of the module that holds the working directory)
// into dir as kmsbroker-plugin-<pluginType> and returns the executable's
// path. Tests call it once per package, from TestMain or a sync.Once, so
// that they run the real program rather than an in-process stand-in.
func Build(dir, pluginType, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "kmsbroker-plugin-"+pluginType)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build plugin %s from %s: %w\n%s", pluginType, pkg, err, stderr.String())
	}
	return out, nil
}

// moduleRoot is the directory of the go.mod that governs the working
// directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		return "", fmt.Errorf("find module root: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}
