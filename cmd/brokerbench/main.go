// Command brokerbench measures kmsbroker beside its baselines and writes
// the result to BENCHMARKS.md. `make bench` builds brokerd, the plugins,
// this program and its no-op plugin, then runs it.
//
// Every figure is measured in the same run as the baseline it is compared
// with, so a busy machine slows both:
//
//  1. in-core: keyring encrypt/decrypt (warm) vs crypto/cipher AES-256-GCM
//  2. API: brokerd dev over gRPC and HTTP/JSON, 1, 8 and 64 clients
//  3. plugin round trip: the aead plugin vs a go-plugin call that does nothing
//  4. Vault transit, when a server can be had, beside the API rows
//  5. start: brokerd server to ready with three plugin blocks
//  6. scale: 100,000 scopes on SQLite, RSS, restart time at 1k and 100k
//  7. steady state: plugin calls per 10,000 warm data operations
//
// Servers run as child processes on free loopback ports, in a temporary
// directory removed at exit; none outlives the program.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/report"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/sysinfo"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "brokerbench:", err)
		os.Exit(1)
	}
}

// allSections are the sections in the order they run. Section 4 (Vault)
// runs inside section 2's step, whose rows it completes.
var allSections = []int{1, 2, 3, 4, 5, 6, 7}

func run(args []string, stdout, stderr io.Writer) error {
	b := &bench{progress: stderr}
	var sections, out string
	fs := flag.NewFlagSet("brokerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&b.bin, "bin", "bin", "directory holding brokerd and the kmsbroker-plugin-* programs")
	fs.StringVar(&b.noopPlugin, "noop-plugin", "", "the no-op go-plugin program (default: brokerbench-noop-plugin in -bin)")
	fs.StringVar(&out, "out", "BENCHMARKS.md", "file whose generated block receives the table; empty: print only")
	fs.DurationVar(&b.cell, "cell", 3*time.Second, "measured time of each API and Vault cell")
	fs.DurationVar(&b.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each cell")
	fs.IntVar(&b.scopes, "scopes", 100_000, "scopes to create for the scale section")
	fs.StringVar(&sections, "sections", "all", "comma-separated sections to run (1-7), or all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	want, err := parseSections(sections)
	if err != nil {
		return err
	}
	if b.noopPlugin == "" {
		b.noopPlugin = filepath.Join(b.bin, "brokerbench-noop-plugin")
	}
	if b.bin, err = filepath.Abs(b.bin); err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(b.bin, "brokerd"), filepath.Join(b.bin, "kmsbroker-plugin-aead"), b.noopPlugin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run `make bench`, which builds it)", err)
		}
	}
	if b.scopes < 1000 {
		return errors.New("-scopes must be at least 1000: restart time is compared at 1,000 scopes")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if b.dir, err = os.MkdirTemp("", "brokerbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	b.logger = hclog.New(&hclog.LoggerOptions{Name: "brokerbench", Level: hclog.Error, Output: stderr})
	b.http = newHTTPClient()

	machine := sysinfo.Read()
	loadStart := sysinfo.LoadAverage()
	started := time.Now()
	b.rep = &report.Report{}

	steps := []struct {
		sections []int // the step runs when any of these is wanted
		name     string
		fn       func(context.Context) error
	}{
		{[]int{1}, "in-core", b.inCore},
		{[]int{2, 4, 7}, "API, Vault transit and steady state", b.api},
		{[]int{3}, "plugin round trip", b.pluginRoundTrip},
		{[]int{5}, "start", b.start},
		{[]int{6}, "scale", b.scale},
	}
	b.want = want
	for _, s := range steps {
		if !slices.ContainsFunc(s.sections, func(n int) bool { return want[n] }) {
			b.note(fmt.Sprintf("%s (section %v) was not run: -sections=%s", s.name, s.sections, sections))
			continue
		}
		b.say("== %s", s.name)
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}

	rep := b.rep
	// Steps fill sections out of order (section 7 inside section 2's
	// step); the table reads in section order.
	slices.SortStableFunc(rep.Rows, func(x, y report.Row) int {
		return strings.Compare(x.Section[:1], y.Section[:1])
	})
	rep.Header = []string{
		fmt.Sprintf("Run: %s, %s in total, `make bench` (cmd/brokerbench)", machine.Date.Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second)),
		fmt.Sprintf("Machine: %d CPUs (`nproc`), %s, %s RAM, %s, %s", machine.CPUs, machine.CPUModel, fmtMemory(machine.Memory), machine.OS, machine.GoVersion),
		fmt.Sprintf("Load average (1, 5, 15 min): %s at start, %s at end", loadStart, sysinfo.LoadAverage()),
		fmt.Sprintf("Cells: %v measured after %v warm-up; each API client has its own connection; every ratio is kmsbroker ÷ baseline", b.cell, b.warmup),
	}
	rep.Goals = b.goals()
	text := rep.Markdown()
	fmt.Fprintln(stdout, rep.Table())
	for _, g := range rep.Goals {
		fmt.Fprintf(stdout, "goal: %s — %s (%s)\n", g.Name, g.Status, g.Result)
	}
	if out == "" {
		return nil
	}
	doc, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	doc, err = report.Splice(doc, text)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "brokerbench: wrote %s\n", out)
	return nil
}

func parseSections(s string) (map[int]bool, error) {
	want := make(map[int]bool)
	if s == "all" {
		for _, n := range allSections {
			want[n] = true
		}
		return want, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || !slices.Contains(allSections, n) {
			return nil, fmt.Errorf("-sections: %q is not a section number 1-7", f)
		}
		want[n] = true
	}
	return want, nil
}
