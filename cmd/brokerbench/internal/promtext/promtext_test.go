package promtext

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSum(t *testing.T) {
	tests := []struct {
		name    string
		metric  string
		match   map[string]string
		want    float64
		wantErr error
	}{
		{"every series", "kmsbroker_plugin_calls_total", nil, 9, nil},
		{"one block", "kmsbroker_plugin_calls_total", map[string]string{"block": "aead"}, 8, nil},
		{"two labels", "kmsbroker_plugin_calls_total", map[string]string{"block": "aead", "operation": "decrypt"}, 5, nil},
		{"no series matches", "kmsbroker_plugin_calls_total", map[string]string{"block": "none"}, 0, nil},
		{"label not on series", "kmsbroker_plugin_calls_total", map[string]string{"scope": "x"}, 0, nil},
		{"zero counter", "kmsbroker_plugin_restarts_total", nil, 0, nil},
		{"gauge", "go_goroutines", nil, 42, nil},
		{"absent family", "kmsbroker_plugin_call_total", nil, 0, ErrNoMetric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open("testdata/metrics.txt")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Sum(f, tt.metric, tt.match)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Sum error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Sum = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSumRefusesHistogram(t *testing.T) {
	f, err := os.Open("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Sum(f, "kmsbroker_plugin_call_duration_seconds", nil); err == nil {
		t.Fatal("Sum of a histogram succeeded, want an error")
	}
}

func TestSumRejectsGarbage(t *testing.T) {
	if _, err := Sum(strings.NewReader("kmsbroker_plugin_calls_total{ 3\n"), "kmsbroker_plugin_calls_total", nil); err == nil {
		t.Fatal("Sum of malformed text succeeded, want an error")
	}
}

func FuzzSum(f *testing.F) {
	if b, err := os.ReadFile("testdata/metrics.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("x_total 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Sum(strings.NewReader(in), "kmsbroker_plugin_calls_total", map[string]string{"block": "aead"})
		if err != nil && got != 0 {
			t.Errorf("Sum returned %v with error %v, want 0", got, err)
		}
	})
}
