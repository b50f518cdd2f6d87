package main

import (
	"bytes"
	"strings"
	"testing"
)

// runCLI runs brokerd in-process with the given environment and returns
// its exit code, standard output and standard error.
func runCLI(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cmdEnv{
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return environ[k] },
	}
	code := run(env, args)
	return code, stdout.String(), stderr.String()
}

// Command-line mistakes are caught before anything is sent, with exit
// code 2 for usage and 1 for a bad value, and a message that names them.
// The address is a closed port: a command that got as far as calling the
// broker would fail with "unavailable" instead.
func TestCommandLineMistakes(t *testing.T) {
	environ := map[string]string{"BROKER_ADDR": "http://127.0.0.1:1", "BROKER_TOKEN": devToken}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"flag after the value", []string{"encrypt", "-scope=o_1", "hello", "-aad=ctx"}, 2, "flag -aad comes after an argument"},
		{"flag value not echoed", []string{"decrypt", "-scope=o_1", "AQE", "-token=kmsb.secret"}, 2, "flag -token comes after"},
		{"two values", []string{"encrypt", "-scope=o_1", "a", "b"}, 2, `unexpected argument "b"`},
		{"no value", []string{"encrypt", "-scope=o_1"}, 2, "give the value as an argument"},
		{"argument to a command without", []string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{"group without subcommand", []string{"scopes"}, 2, "scopes rotate-keys"},
		{"unknown subcommand", []string{"tokens", "mint"}, 2, `unknown subcommand "mint"`},
		{"sub-second ttl", []string{"tokens", "create", "-name=a", "-role=app", "-ttl=999ms"}, 1, "whole number of seconds"},
		{"fractional ttl", []string{"tokens", "create", "-name=a", "-role=app", "-ttl=1500ms"}, 1, "whole number of seconds"},
		{"empty scope in list", []string{"tokens", "create", "-name=a", "-role=app", "-scopes=o_1,,o_2"}, 1, "empty scope id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, environ, tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.wantCode, tc.wantErr)
			}
			for _, secret := range []string{devToken, "kmsb.secret"} {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr holds the token %q:\n%s", secret, stderr)
				}
			}
		})
	}
}

// Usage text lists -token but never BROKER_TOKEN's value, which the flag
// package would print as the default.
func TestUsageHidesToken(t *testing.T) {
	for _, cmd := range [][]string{{"encrypt", "-help"}, {"tokens", "create", "-help"}, {"derive-key", "-length=abc"}} {
		code, _, stderr := runCLI(t, map[string]string{"BROKER_TOKEN": devToken}, cmd...)
		if code != 2 || !strings.Contains(stderr, "-token") {
			t.Fatalf("%v: exit %d, stderr:\n%s\nwant usage naming -token", cmd, code, stderr)
		}
		if strings.Contains(stderr, devToken) {
			t.Errorf("%v: usage shows BROKER_TOKEN's value:\n%s", cmd, stderr)
		}
	}
}
