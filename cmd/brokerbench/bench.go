package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
)

// bench is one run: where things are, how long cells last, and what has
// been measured so far.
type bench struct {
	bin        string // brokerd and plugins
	noopPlugin string // the baseline plugin program
	dir        string // scratch space, removed at exit
	cell       time.Duration
	warmup     time.Duration
	scopes     int
	want       map[int]bool

	logger   hclog.Logger // for in-process plugin hosts
	http     *http.Client
	progress io.Writer
	rep      *report.Report

	// Figures the goals are judged on; NaN or 0 when not measured.
	goal goalFigures
}

type goalFigures struct {
	inCore1KiB      float64       // keyring ÷ raw, encrypt 1 KiB
	grpc64, vault64 float64       // encrypt 1 KiB ops/s at 64 clients
	grpc64P99       time.Duration // p99 of the same cell
	vaultMissing    string        // why there is no Vault figure
	pluginP50Ratio  float64       // aead plugin ÷ bare go-plugin, p50
	pluginP99Ratio  float64
	ready           time.Duration // brokerd server to ready, median
	restart1k       time.Duration
	restartMax      time.Duration
	steadyCalls     float64
	steadyMeasured  bool
}

// say reports progress on stderr; the table goes to stdout.
func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.progress, "brokerbench: "+format+"\n", args...)
}

func (b *bench) row(r report.Row) {
	b.rep.Rows = append(b.rep.Rows, r)
	b.say("%s | %s | %s | %s %s | %s", r.Section, r.Measure, r.Value, r.Baseline, r.BaseFig, r.Ratio)
}

func (b *bench) note(n string) { b.rep.Notes = append(b.rep.Notes, n) }

// Goal thresholds, from issue 8.
const (
	goalInCore       = 0.8
	goalVaultFactor  = 10.0
	goalP99          = 5 * time.Millisecond
	goalPluginFactor = 1.5
	goalReady        = 300 * time.Millisecond
	// goalFlat is how much slower a restart at many scopes may be than
	// at 1,000 and still count as flat: start-up time on a shared
	// two-core machine varies by about this much between runs.
	goalFlat = 1.25
)

func (b *bench) goals() []report.Goal {
	g := b.goal
	verdict := func(measured, ok bool) report.Status {
		switch {
		case !measured:
			return report.NotMeasured
		case ok:
			return report.Met
		default:
			return report.Missed
		}
	}
	var out []report.Goal

	out = append(out, report.Goal{
		Name:   fmt.Sprintf("in-core 1 KiB encrypt ≥ %.1f× raw AES-GCM", goalInCore),
		Result: fmtRatio(g.inCore1KiB),
		Status: verdict(g.inCore1KiB > 0, g.inCore1KiB >= goalInCore),
	})

	vault := report.Goal{Name: fmt.Sprintf("API gRPC (grpc_address listener) encrypt 1 KiB @64 ≥ %.0f× Vault transit and p99 < %s", goalVaultFactor, fmtDur(goalP99))}
	switch {
	case g.grpc64 == 0:
		vault.Result = "API not measured"
	case g.vault64 == 0:
		vault.Result = fmt.Sprintf("Vault not available (%s); p99 %s", g.vaultMissing, fmtDur(g.grpc64P99))
	default:
		vault.Result = fmt.Sprintf("%s Vault, p99 %s", fmtRatio(g.grpc64/g.vault64), fmtDur(g.grpc64P99))
		vault.Status = verdict(true, g.grpc64/g.vault64 >= goalVaultFactor && g.grpc64P99 < goalP99)
	}
	out = append(out, vault)

	out = append(out, report.Goal{
		Name:   fmt.Sprintf("plugin round trip ≤ %.1f× bare go-plugin", goalPluginFactor),
		Result: fmt.Sprintf("p50 %s, p99 %s", fmtRatio(g.pluginP50Ratio), fmtRatio(g.pluginP99Ratio)),
		Status: verdict(g.pluginP50Ratio > 0, g.pluginP50Ratio <= goalPluginFactor && g.pluginP99Ratio <= goalPluginFactor),
	})
	out = append(out, report.Goal{
		Name:   fmt.Sprintf("ready ≤ %s with three plugin blocks", fmtDur(goalReady)),
		Result: "median of restarts " + fmtDur(g.ready),
		Status: verdict(g.ready > 0, g.ready <= goalReady),
	})
	flat := report.Goal{Name: fmt.Sprintf("restart time flat from %s to %s scopes (≤ %.2f×)", fmtInt(scaleFirst), fmtInt(b.scopes), goalFlat), Result: "–"}
	if g.restart1k > 0 && g.restartMax > 0 {
		r := float64(g.restartMax) / float64(g.restart1k)
		flat.Result = fmt.Sprintf("%s → %s, %s", fmtDur(g.restart1k), fmtDur(g.restartMax), fmtRatio(r))
		flat.Status = verdict(true, r <= goalFlat)
	}
	out = append(out, flat)
	steady := report.Goal{Name: fmt.Sprintf("no plugin call in %s warm data operations", fmtInt(steadyOps)), Result: "–"}
	if g.steadyMeasured {
		steady.Result = fmt.Sprintf("%.0f calls", g.steadyCalls)
		steady.Status = verdict(true, g.steadyCalls == 0)
	}
	out = append(out, steady)
	return out
}

// fmtInt prints n with thousands separators.
func fmtInt(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtRate prints a rate rounded to three significant digits, which is all
// a shared machine resolves.
func fmtRate(x float64) string {
	if x <= 0 || math.IsNaN(x) {
		return "–"
	}
	mag := math.Pow(10, math.Floor(math.Log10(x))-2)
	return fmtInt(int(math.Round(x/mag) * mag))
}

// fmtDur prints a latency or time in milliseconds.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d <= 0:
		return "–"
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmtInt(int(math.Round(ms))) + " ms"
	}
}

func fmtRatio(x float64) string {
	switch {
	case x <= 0 || math.IsNaN(x) || math.IsInf(x, 0):
		return "–"
	case x < 10:
		return fmt.Sprintf("%.2f×", x)
	default:
		return fmt.Sprintf("%.0f×", x)
	}
}

func fmtMiB(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func fmtMemory(n uint64) string {
	if n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// median returns the middle value (the lower of the two middles), or the
// zero value for no values.
func median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
