package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"int small", fmtInt(999), "999"},
		{"int thousands", fmtInt(1234567), "1,234,567"},
		{"int negative", fmtInt(-1000), "-1,000"},
		{"rate rounds to 3 digits", fmtRate(1234567), "1,230,000"},
		{"rate small", fmtRate(12.345), "12"},
		{"rate zero", fmtRate(0), "–"},
		{"rate NaN", fmtRate(math.NaN()), "–"},
		{"dur sub-ms", fmtDur(93 * time.Microsecond), "0.093 ms"},
		{"dur ms", fmtDur(2500 * time.Microsecond), "2.50 ms"},
		{"dur tens", fmtDur(12345 * time.Microsecond), "12.3 ms"},
		{"dur hundreds", fmtDur(1234567 * time.Microsecond), "1,235 ms"},
		{"dur zero", fmtDur(0), "–"},
		{"ratio", fmtRatio(0.8), "0.80×"},
		{"ratio large", fmtRatio(12.4), "12×"},
		{"ratio inf", fmtRatio(math.Inf(1)), "–"},
		{"size bytes", fmtSize(64), "64 B"},
		{"size KiB", fmtSize(64 << 10), "64 KiB"},
		{"MiB", fmtMiB(3 << 20), "3.0 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	if got := median([]time.Duration{5, 1, 3}); got != 3 {
		t.Errorf("median of 5,1,3 = %v, want 3", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of 4,1,3,2 = %v, want the lower middle 2", got)
	}
	if got := median([]int(nil)); got != 0 {
		t.Errorf("median of nothing = %v, want 0", got)
	}
	xs := []int{3, 1, 2}
	median(xs)
	if xs[0] != 3 {
		t.Errorf("median sorted its input: %v", xs)
	}
}

func TestParseSections(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"all", allSections, false},
		{"1", []int{1}, false},
		{"2, 7", []int{2, 7}, false},
		{"0", nil, true},
		{"8", nil, true},
		{"x", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSections(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSections(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("parseSections(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for _, n := range tt.want {
				if !got[n] {
					t.Errorf("parseSections(%q) lacks %d", tt.in, n)
				}
			}
		})
	}
}

func TestGoals(t *testing.T) {
	status := func(gs []report.Goal, prefix string) report.Status {
		t.Helper()
		for _, g := range gs {
			if strings.HasPrefix(g.Name, prefix) {
				return g.Status
			}
		}
		t.Fatalf("no goal starts with %q", prefix)
		return 0
	}
	b := &bench{scopes: 100_000}
	for _, g := range b.goals() {
		if g.Status != report.NotMeasured {
			t.Errorf("with nothing measured, goal %q is %v", g.Name, g.Status)
		}
	}

	b.goal = goalFigures{
		inCore1KiB: 0.8,
		grpc64:     20_000, vault64: 2_000, grpc64P99: 4 * time.Millisecond,
		pluginP50Ratio: 1.2, pluginP99Ratio: 1.6,
		ready:     300 * time.Millisecond,
		restart1k: 100 * time.Millisecond, restartMax: 130 * time.Millisecond,
		steadyMeasured: true, steadyCalls: 0,
	}
	gs := b.goals()
	for prefix, want := range map[string]report.Status{
		"in-core":           report.Met,
		"API gRPC":          report.Met,
		"plugin round trip": report.Missed, // p99 is over
		"ready":             report.Met,
		"restart time":      report.Missed, // 1.3× is not flat
		"no plugin call":    report.Met,
	} {
		if got := status(gs, prefix); got != want {
			t.Errorf("goal %q = %v, want %v", prefix, got, want)
		}
	}

	b.goal.grpc64P99 = 5 * time.Millisecond
	b.goal.steadyCalls = 1
	gs = b.goals()
	if got := status(gs, "API gRPC"); got != report.Missed {
		t.Errorf("p99 of exactly 5ms: goal = %v, want missed (p99 must be under 5ms)", got)
	}
	if got := status(gs, "no plugin call"); got != report.Missed {
		t.Errorf("one steady-state plugin call: goal = %v, want missed", got)
	}

	b.goal.vault64, b.goal.vaultMissing = 0, "no server"
	if got := status(b.goals(), "API gRPC"); got != report.NotMeasured {
		t.Errorf("without Vault: goal = %v, want not measured", got)
	}
}

func TestRunRefusesMissingPrograms(t *testing.T) {
	var out, errOut strings.Builder
	err := run([]string{"-bin=" + t.TempDir(), "-out="}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "make bench") {
		t.Fatalf("run with an empty -bin: error = %v, want one pointing at make bench", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-sections=9"}, {"extra"}, {"-nosuchflag"}} {
		var out, errOut strings.Builder
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
