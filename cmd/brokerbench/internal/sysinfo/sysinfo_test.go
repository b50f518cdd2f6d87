package sysinfo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestCPUModel(t *testing.T) {
	got, err := CPUModel(open(t, "cpuinfo.txt"))
	if err != nil {
		t.Fatalf("CPUModel: %v", err)
	}
	if want := "Intel(R) Xeon(R) Processor"; got != want {
		t.Errorf("CPUModel = %q, want %q", got, want)
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		name    string
		read    func() (uint64, error)
		want    uint64
		wantErr error
	}{
		{"VmRSS from status", func() (uint64, error) { return VmRSS(open(t, "status.txt")) }, 1728 * 1024, nil},
		{"MemTotal from meminfo", func() (uint64, error) { return field(open(t, "meminfo.txt"), "MemTotal") }, 24683664 * 1024, nil},
		{"missing field", func() (uint64, error) { return VmRSS(open(t, "meminfo.txt")) }, 0, ErrNotFound},
		{"no unit", func() (uint64, error) { return VmRSS(strings.NewReader("VmRSS: 12\n")) }, 0, nil},
		{"not a number", func() (uint64, error) { return VmRSS(strings.NewReader("VmRSS: x kB\n")) }, 0, nil},
		{"too large", func() (uint64, error) { return VmRSS(strings.NewReader("VmRSS: 99999999999999999 kB\n")) }, 0, nil},
		{"prefix of another name", func() (uint64, error) { return VmRSS(strings.NewReader("VmRSSx: 1 kB\n")) }, 0, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read()
			switch {
			case tt.want != 0 && err != nil:
				t.Fatalf("got error %v, want %d", err, tt.want)
			case tt.want == 0 && err == nil:
				t.Fatalf("got %d, want an error", got)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestProcessRSSOfSelf(t *testing.T) {
	rss, err := ProcessRSS(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if rss < 1<<20 {
		t.Errorf("own RSS = %d bytes, want at least 1 MiB for a Go test binary", rss)
	}
}

func FuzzField(f *testing.F) {
	f.Add("VmRSS:\t    1728 kB\n")
	f.Add("VmRSS: 18446744073709551615 kB\n")
	f.Add("VmRSS:")
	f.Add("model name\t: x\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := VmRSS(strings.NewReader(in))
		if err == nil && got%1024 != 0 {
			t.Errorf("VmRSS = %d, not a whole number of KiB", got)
		}
		if model, err := CPUModel(strings.NewReader(in)); err == nil && strings.ContainsAny(model, "\n") {
			t.Errorf("CPUModel = %q spans lines", model)
		}
	})
}
