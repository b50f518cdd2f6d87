// Command brokerd is the kmsbroker daemon and its command-line client.
//
// One binary serves every role: `brokerd server` and `brokerd dev` run the
// broker; every other command is a client of a running broker. Flags follow
// the HashiCorp style, -flag=value.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one brokerd subcommand.
type command struct {
	synopsis string
	run      func(env *cmdEnv, args []string) error
}

// cmdEnv is what a command reads and writes, so tests can drive commands
// without a process.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// errUsage marks an error the user fixes by changing the command line; the
// flag package has already printed the usage for it.
var errUsage = errors.New("usage")

func commands() map[string]command {
	return map[string]command{
		"server":                     {"Run the broker from a config file", runServer},
		"dev":                        {"Run a throw-away broker with local keys", runDev},
		"config encrypt":             {"Encrypt the {{encrypt(...)}} values of a config file", runConfigEncrypt},
		"config decrypt":             {"Decrypt the {{decrypt(...)}} values of a config file", runConfigDecrypt},
		"config validate":            {"Check a config file without starting the broker", runConfigValidate},
		"status":                     {"Show each purpose's plugin and the store", runStatus},
		"scopes create":              {"Create a scope", runScopesCreate},
		"scopes list":                {"List scopes", runScopesList},
		"scopes read":                {"Read one scope", runScopesRead},
		"scopes rotate-keys":         {"Add new key versions to a scope", runRotateKeys},
		"scopes rewrap":              {"Re-encrypt key versions under the current root key", runRewrap},
		"scopes key-versions":        {"List a scope's key versions", runKeyVersions},
		"scopes destroy-key-version": {"Destroy one key version", runDestroyKeyVersion},
		"encrypt":                    {"Encrypt a value with a scope's data key", runEncrypt},
		"decrypt":                    {"Decrypt an envelope", runDecrypt},
		"reencrypt":                  {"Re-encrypt an envelope under the newest key version", runReEncrypt},
		"derive-key":                 {"Derive a session key", runDeriveKey},
		"tokens create":              {"Create a client token", runTokensCreate},
		"tokens list":                {"List client tokens", runTokensList},
		"tokens revoke":              {"Revoke a client token", runTokensRevoke},
		"version":                    {"Print the version", runVersion},
	}
}

func main() {
	env := &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(env, os.Args[1:]))
}

// run dispatches args to a command and returns the exit code: 0 on
// success, 1 on failure, 2 on a usage error, 3 when status finds the
// broker not ready.
func run(env *cmdEnv, args []string) int {
	cmds := commands()
	name, rest := lookup(cmds, args)
	if name == "" {
		switch {
		case len(args) == 0, args[0] == "-h", args[0] == "-help", args[0] == "help", args[0] == "--help":
		case isGroup(cmds, args[0]) && len(args) == 1:
			fmt.Fprintf(env.stderr, "brokerd %s: give a subcommand\n\n", args[0])
			cmds = group(cmds, args[0])
		case isGroup(cmds, args[0]):
			fmt.Fprintf(env.stderr, "brokerd %s: unknown subcommand %q\n\n", args[0], args[1])
			cmds = group(cmds, args[0])
		case args[0] == "-version" || args[0] == "--version":
			return run(env, []string{"version"})
		default:
			fmt.Fprintf(env.stderr, "brokerd: unknown command %q\n\n", args[0])
		}
		usage(env.stderr, cmds)
		return 2
	}
	err := cmds[name].run(env, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errNotReady):
		fmt.Fprintf(env.stderr, "brokerd %s: %v\n", name, err)
		return 3
	default:
		fmt.Fprintf(env.stderr, "brokerd %s: %v\n", name, err)
		return 1
	}
}

// lookup finds the longest command name that prefixes args.
func lookup(cmds map[string]command, args []string) (string, []string) {
	if len(args) >= 2 {
		if _, ok := cmds[args[0]+" "+args[1]]; ok {
			return args[0] + " " + args[1], args[2:]
		}
	}
	if len(args) >= 1 {
		if _, ok := cmds[args[0]]; ok {
			return args[0], args[1:]
		}
	}
	return "", nil
}

// isGroup reports whether name is the first word of several commands,
// such as scopes.
func isGroup(cmds map[string]command, name string) bool {
	return len(group(cmds, name)) > 0
}

// group returns the commands whose first word is name.
func group(cmds map[string]command, name string) map[string]command {
	out := make(map[string]command)
	for n, c := range cmds {
		if strings.HasPrefix(n, name+" ") {
			out[n] = c
		}
	}
	return out
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage: brokerd <command> [-flag=value ...]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-27s %s\n", n, cmds[n].synopsis)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run \"brokerd <command> -help\" for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(env *cmdEnv, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: brokerd %s [flags] %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, which must all be flags, and maps flag errors
// to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	return parseArgs(fs, args, 0)
}

// parseArgs parses args: flags, then at most positional other arguments.
// A flag after an argument is named, since the flag package would
// otherwise take it silently as one more argument.
func parseArgs(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	rest := fs.Args()
	for _, a := range rest {
		if len(a) > 1 && a[0] == '-' && a != "--" {
			return usageErrorf(fs, "flag %s comes after an argument; flags go before it", flagName(a))
		}
	}
	if len(rest) > positional {
		return usageErrorf(fs, "unexpected argument %q", rest[positional])
	}
	return nil
}

// flagName is the flag part of -name=value, which may hold a secret.
func flagName(arg string) string {
	name, _, _ := strings.Cut(arg, "=")
	return name
}

// usageErrorf prints a command-line mistake and the command's usage, and
// returns errUsage.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "brokerd %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}
