package awskms

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCacheDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	userCache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("no user cache directory: %v", err)
	}
	tests := []struct {
		name string
		env  string
		want string
	}{
		{name: "default", env: "", want: filepath.Join(userCache, "kmsbroker-e2e")},
		{name: "absolute", env: "/var/cache/e2e", want: "/var/cache/e2e"},
		{name: "relative", env: "cache", want: filepath.Join(wd, "cache")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvCache, tt.env)
			got, err := cacheDir()
			if err != nil {
				t.Fatalf("cacheDir() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("cacheDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestInstallIsCached installs the emulator (or finds it) and checks that
// a second install leaves the binary alone.
func TestInstallIsCached(t *testing.T) {
	if os.Getenv(EnvAWSEndpoint) != "" {
		t.Skipf("%s is set; the emulator is not used", EnvAWSEndpoint)
	}
	bin, err := emulatorBinary()
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	again, err := installEmulator()
	if err != nil {
		t.Fatalf("second install: %v", err)
	}
	after, err := os.Stat(again)
	if err != nil {
		t.Fatal(err)
	}
	if again != bin || !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
		t.Errorf("second install replaced %s (mtime %v -> %v), want it kept", bin, before.ModTime(), after.ModTime())
	}
}

func TestInstalledVersion(t *testing.T) {
	text := filepath.Join(t.TempDir(), "local-kms")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{name: "missing", path: filepath.Join(t.TempDir(), "local-kms")},
		{name: "not a Go binary", path: text},
		{name: "another Go program", path: os.Args[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := installedVersion(tt.path); got != "" {
				t.Errorf("installedVersion(%s) = %q, want \"\"", tt.path, got)
			}
		})
	}

	if os.Getenv(EnvAWSEndpoint) != "" {
		return
	}
	t.Run("emulator", func(t *testing.T) {
		bin, err := emulatorBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got := installedVersion(bin); got != EmulatorVersion {
			t.Errorf("installedVersion(%s) = %q, want %q", bin, got, EmulatorVersion)
		}
	})
}
