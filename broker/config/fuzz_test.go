package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// addSeeds adds every file matching pattern to the fuzz corpus.
func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s: %v", pattern, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse checks that Parse never panics, that every error it returns is
// an *Error whose diagnostics carry a position, and that every config it
// accepts keeps the invariants Parse promises.
func FuzzParse(f *testing.F) {
	addSeeds(f, "testdata/*.hcl")
	addSeeds(f, "testdata/invalid/*.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse(src, "fuzz.hcl")
		if err != nil {
			var cfgErr *Error
			if !errors.As(err, &cfgErr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is %T, want *Error wrapping ErrInvalid", err, err)
			}
			if len(cfgErr.Diagnostics) == 0 {
				t.Fatal("*Error without diagnostics")
			}
			for _, d := range cfgErr.Diagnostics {
				if d.Subject == nil || d.Subject.Filename != "fuzz.hcl" {
					t.Fatalf("diagnostic without position: %s", formatDiag(d))
				}
			}
			return
		}

		names := map[string]bool{}
		served := map[string]bool{}
		for _, k := range c.KMS {
			if names[k.Name] {
				t.Fatalf("two blocks named %q", k.Name)
			}
			names[k.Name] = true
			if len(k.Purposes) == 0 {
				t.Fatalf("block %s accepted without a purpose", k.Name)
			}
			for _, p := range k.Purposes {
				if served[string(p)] {
					t.Fatalf("purpose %s accepted twice", p)
				}
				served[string(p)] = true
			}
			if k.PluginPath == "" && !slices.Contains(KnownTypes, k.Type) {
				t.Fatalf("unknown type %q accepted without plugin_path", k.Type)
			}
			if k.Timeout <= 0 || k.StartTimeout <= 0 {
				t.Fatalf("block %s accepted with timeouts %v, %v", k.Name, k.Timeout, k.StartTimeout)
			}
		}
		if !slices.Contains(LogLevels, c.LogLevel) {
			t.Fatalf("log level %q accepted", c.LogLevel)
		}
	})
}

// FuzzConfigBlock checks that ConfigBlock never panics, that its errors
// are *Error values with positions, and that a block it returns serves
// config and holds no marker.
func FuzzConfigBlock(f *testing.F) {
	addSeeds(f, "testdata/configblock/*.hcl")
	addSeeds(f, "testdata/*.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		k, err := ConfigBlock(src, "fuzz.hcl")
		if err != nil {
			var cfgErr *Error
			if !errors.As(err, &cfgErr) || len(cfgErr.Diagnostics) == 0 {
				t.Fatalf("error %v is %T, want *Error with diagnostics", err, err)
			}
			for _, d := range cfgErr.Diagnostics {
				if d.Subject == nil || d.Subject.Start.Line < 1 {
					t.Fatalf("diagnostic without position: %s", formatDiag(d))
				}
			}
			return
		}
		if k != nil && !slices.Contains(k.Purposes, purpose.Config) {
			t.Fatalf("block %s returned without the config purpose", k.Name)
		}
	})
}
