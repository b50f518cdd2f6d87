// Package sysinfo reads what a benchmark report must say about the
// machine it ran on, and a process's resident memory, from Linux's /proc.
// Elsewhere the figures read "unknown".
package sysinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPUs      int    // logical CPUs this process may use
	CPUModel  string // "model name" of the first CPU
	Memory    uint64 // MemTotal in bytes; 0 when unknown
	GoVersion string // the toolchain that built the benchmark
	OS        string
	Date      time.Time
}

// Read returns the machine's description; fields it cannot read stay at
// their "unknown" values.
func Read() Machine {
	m := Machine{
		CPUs:      runtime.NumCPU(),
		CPUModel:  "unknown",
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Date:      time.Now().UTC(),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		if model, err := CPUModel(f); err == nil {
			m.CPUModel = model
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		if total, err := field(f, "MemTotal"); err == nil {
			m.Memory = total
		}
		f.Close()
	}
	return m
}

// ErrNotFound means the field asked for is not in the input.
var ErrNotFound = errors.New("field not found")

// CPUModel returns the first "model name" in /proc/cpuinfo format.
func CPUModel(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read cpuinfo: %w", err)
	}
	return "", fmt.Errorf("read cpuinfo: model name: %w", ErrNotFound)
}

// VmRSS returns the resident set size, in bytes, from a process's
// /proc/PID/status.
func VmRSS(r io.Reader) (uint64, error) {
	return field(r, "VmRSS")
}

// ProcessRSS reads VmRSS of the process pid.
func ProcessRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	return VmRSS(f)
}

// LoadAverage returns the 1, 5 and 15 minute load averages as /proc/loadavg
// prints them, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// maxKiB bounds a "NNN kB" value: 2^54 KiB is 16 EiB, past any memory,
// and the product with 1024 still fits in a uint64.
const maxKiB = 1 << 54

// field returns a "Name:   NNN kB" line's value in bytes, as /proc/meminfo
// and /proc/PID/status print them.
func field(r io.Reader, name string) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != name {
			continue
		}
		parts := strings.Fields(value)
		if len(parts) != 2 || parts[1] != "kB" {
			return 0, fmt.Errorf("read %s: want \"<number> kB\", got %q", name, strings.TrimSpace(value))
		}
		kib, err := strconv.ParseUint(parts[0], 10, 64)
		if err != nil || kib > maxKiB {
			return 0, fmt.Errorf("read %s: %q is not a size in kB", name, parts[0])
		}
		return kib * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	return 0, fmt.Errorf("read %s: %w", name, ErrNotFound)
}
