package binaries

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

const helloPkg = "./e2e/binaries/testdata/hello"

func TestProgramBuildsOnce(t *testing.T) {
	path := Program(t, helloPkg, "hello")
	if filepath.Dir(path) != state.dir {
		t.Errorf("Program() = %s, want it in %s", path, state.dir)
	}
	checkBuiltFrom(t, path, "github.com/kmsbroker/kmsbroker/e2e/binaries/testdata/hello")
	out, err := exec.Command(path, "e2e").Output()
	if err != nil {
		t.Fatalf("run %s: %v", path, err)
	}
	if got, want := string(out), "hello e2e\n"; got != want {
		t.Errorf("%s printed %q, want %q", path, got, want)
	}

	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if again := Program(t, helloPkg, "hello"); again != path {
		t.Errorf("second Program() = %s, want %s", again, path)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second Program() rebuilt %s (mtime %v -> %v), want it kept", path, before.ModTime(), after.ModTime())
	}
}

func TestProgramErrors(t *testing.T) {
	tests := []struct {
		name    string
		pkg     string
		binName string
		want    string // in the error text
	}{
		{
			name:    "missing package",
			pkg:     "./e2e/binaries/testdata/missing",
			binName: "missing",
			want:    "go build ./e2e/binaries/testdata/missing",
		},
		{
			name:    "name taken",
			pkg:     "./e2e/binaries/testdata/other",
			binName: "hello",
			want:    "the name is taken by " + helloPkg,
		},
	}
	Program(t, helloPkg, "hello")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := program(tt.pkg, tt.binName)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("program(%s, %s) error = %v, want it to contain %q", tt.pkg, tt.binName, err, tt.want)
			}
			// The failure is remembered, not retried.
			_, again := program(tt.pkg, tt.binName)
			if again == nil || again.Error() != err.Error() {
				t.Errorf("second program() error = %v, want %v", again, err)
			}
		})
	}
}

// TestAEADPlugin builds the real aead plugin. It is the one product
// program this package is checked against; brokerd and the other plugins
// are built by the scenario tests.
func TestAEADPlugin(t *testing.T) {
	path := Program(t, "./plugins/aead", PluginPrefix+"aead")
	checkBuiltFrom(t, path, "github.com/kmsbroker/kmsbroker/plugins/aead")
}

// checkBuiltFrom checks that the executable at path was built from the
// main package pkg.
func checkBuiltFrom(t *testing.T, path, pkg string) {
	t.Helper()
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("read build info of %s: %v", path, err)
	}
	if info.Path != pkg {
		t.Errorf("%s was built from %s, want %s", path, info.Path, pkg)
	}
}
