package report

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func sample() *Report {
	return &Report{
		Header: []string{"Run: 2026-12-03 19:00 UTC", "Machine: 2 CPUs"},
		Rows: []Row{
			{Section: "1 in-core", Measure: "encrypt 1 KiB, ops/s", Value: "800,000", Baseline: "crypto/cipher AES-256-GCM", BaseFig: "1,000,000", Ratio: "0.80×", Goal: "≥ 0.8×"},
			{Section: "7 steady", Measure: "plugin calls | 10,000 ops", Value: "0"},
		},
		Goals: []Goal{
			{Name: "in-core ≥ 0.8×", Result: "0.80×", Status: Met},
			{Name: "vault", Result: "no Vault", Status: NotMeasured},
			{Name: "start", Result: "400 ms", Status: Missed},
		},
		Notes: []string{"a note"},
	}
}

func TestMarkdown(t *testing.T) {
	golden(t, "report.md", sample().Markdown())
}

func TestTableColumnsAlign(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(sample().Table()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, rule and 2 rows", len(lines))
	}
	want := len([]rune(lines[0]))
	for i, l := range lines {
		if got := len([]rune(l)); got != want {
			t.Errorf("line %d is %d runes wide, want %d: %q", i, got, want, l)
		}
	}
	if !strings.Contains(lines[3], `plugin calls \| 10,000 ops`) {
		t.Errorf("a | in a cell is not escaped: %q", lines[3])
	}
}

func TestSplice(t *testing.T) {
	block := BeginMarker + "\nold\n" + EndMarker
	tests := []struct {
		name    string
		doc     string
		want    string
		wantErr error
	}{
		{"replaces the block and keeps the reading",
			"# B\n\n" + block + "\n\n## Reading\nmine\n",
			"# B\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n\n## Reading\nmine\n", nil},
		{"appends to a document without markers",
			"# B\nmine\n\n",
			"# B\nmine\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n", nil},
		{"end before begin", EndMarker + "\n" + BeginMarker, "", ErrMarkers},
		{"begin only", BeginMarker + "\n", "", ErrMarkers},
		{"end only", "x\n" + EndMarker, "", ErrMarkers},
		{"two blocks", block + "\n" + block, "", ErrMarkers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Splice([]byte(tt.doc), "new\n")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Splice error = %v, want %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("Splice =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestSpliceNewDocument(t *testing.T) {
	got, err := Splice(nil, "table\n")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "new.md", string(got))
	again, err := Splice(got, "table 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(again), "table 2") || strings.Contains(string(again), "table\n") {
		t.Errorf("second splice did not replace the first block:\n%s", again)
	}
}
