package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/client"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// maxStdin bounds a value read from standard input; the broker refuses
// larger plaintexts anyway.
const maxStdin = 4 << 20

// clientFlags are the flags every client command takes.
type clientFlags struct {
	address        string
	token          string
	caCert         string
	format         string
	recoveryConfig string
	workerConfig   string
	workerName     string

	closers []func() error
}

func (c *clientFlags) register(fs *flag.FlagSet, env *cmdEnv) {
	addr := env.getenv("BROKER_ADDR")
	if addr == "" {
		addr = client.DefaultAddress
	}
	fs.StringVar(&c.address, "address", addr, "broker URL (env BROKER_ADDR)")
	c.token = env.getenv("BROKER_TOKEN")
	fs.Var((*secretFlag)(&c.token), "token", "client token (env BROKER_TOKEN)")
	fs.StringVar(&c.caCert, "ca-cert", env.getenv("BROKER_CACERT"), "PEM file that verifies an https broker (env BROKER_CACERT)")
	fs.StringVar(&c.format, "format", "table", "output format: table or json")
	fs.StringVar(&c.recoveryConfig, "recovery-config", env.getenv("BROKER_RECOVERY_CONFIG"),
		"authenticate with fresh recovery tokens made by the recovery KMS block in this file (env BROKER_RECOVERY_CONFIG)")
	fs.StringVar(&c.workerConfig, "worker-auth-config", env.getenv("BROKER_WORKER_AUTH_CONFIG"),
		"authenticate as a worker with the worker-auth KMS block in this file (env BROKER_WORKER_AUTH_CONFIG)")
	fs.StringVar(&c.workerName, "worker-name", env.getenv("BROKER_WORKER_NAME"), "the worker's name, with -worker-auth-config (env BROKER_WORKER_NAME)")
}

// secretFlag is a string flag whose value, a secret, never appears in
// usage text: the flag package prints a flag's default, and the default
// of -token is BROKER_TOKEN's value.
type secretFlag string

func (f *secretFlag) String() string { return "" }

func (f *secretFlag) Set(v string) error {
	*f = secretFlag(v)
	return nil
}

// client connects with the credential the flags choose: a recovery
// config, a worker-auth config or a token, at most one. Close releases the
// client and any plugin started for one-time tokens.
func (c *clientFlags) client() (*client.Client, error) {
	if c.format != "table" && c.format != "json" {
		return nil, fmt.Errorf("-format=%q: use table or json", c.format)
	}
	cfg := client.Config{Address: c.address, CACertFile: c.caCert}
	switch {
	case c.recoveryConfig != "" && c.workerConfig != "":
		return nil, errors.New("-recovery-config and -worker-auth-config exclude each other")
	case c.recoveryConfig != "":
		creds, err := client.RecoveryCredentials(context.Background(), c.recoveryConfig, client.OneTimeOptions{})
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, creds.Close)
		cfg.Credentials = creds
	case c.workerConfig != "":
		creds, err := client.WorkerCredentials(context.Background(), c.workerConfig, c.workerName, client.OneTimeOptions{})
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, creds.Close)
		cfg.Credentials = creds
	case c.token != "":
		cfg.Credentials = client.Token(c.token)
	}
	cl, err := client.New(cfg)
	if err != nil {
		c.close()
		return nil, err
	}
	c.closers = append([]func() error{cl.Close}, c.closers...)
	return cl, nil
}

// close releases what client opened.
func (c *clientFlags) close() {
	for _, f := range c.closers {
		_ = f()
	}
	c.closers = nil
}

// callContext is cancelled by Ctrl-C.
func callContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// apiError makes a gRPC status readable: the code in words, then the
// broker's message. hint is added to authentication failures.
func apiError(err error, hint string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("broker unavailable: %s", st.Message())
	case codes.Unauthenticated:
		msg := strings.TrimPrefix(st.Message(), "unauthenticated: ")
		return fmt.Errorf("not authenticated: %s (%s)", msg, hint)
	case codes.ResourceExhausted:
		return fmt.Errorf("the request is over the broker's size limit (listener max_plaintext_bytes): %s", st.Message())
	}
	return errors.New(st.Message())
}

// authHint tells the user which credential the command used.
func (c *clientFlags) authHint() string {
	switch {
	case c.recoveryConfig != "":
		return "with a recovery token from " + c.recoveryConfig
	case c.workerConfig != "":
		return "with a worker-auth token from " + c.workerConfig
	case c.token != "":
		return "with -token or BROKER_TOKEN"
	}
	return "no credential given: set -token or BROKER_TOKEN, or -recovery-config"
}

// printJSON prints m with the proto field names. protojson varies its
// whitespace on purpose, so its output is re-indented to be the same on
// every run, for scripts that compare it.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func runStatus(env *cmdEnv, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "status", "")
	cf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if err := printStatus(env, cf.format, st); err != nil {
			return err
		}
		if !st.GetReady() {
			return errNotReady
		}
		return nil
	})
}

// errNotReady makes status exit 3: the broker answered, but is not
// ready to serve (its root KMS does not answer), so scripts can tell it
// from a broker they cannot reach (exit 1).
var errNotReady = errors.New("the broker is not ready")

func printStatus(env *cmdEnv, format string, st *apiv1.StatusResponse) error {
	if format == "json" {
		return printJSON(env.stdout, st)
	}
	fmt.Fprintf(env.stdout, "Version: %s\nReady:   %t\nStore:   %s (ok: %t)\n",
		st.GetVersion(), st.GetReady(), st.GetStore().GetType(), st.GetStore().GetOk())
	if rk := st.GetRootKeys(); rk.GetError() == "" {
		fmt.Fprintf(env.stdout, "Root key: %s (KEK versions on other keys: %d)\n", rk.GetCurrentKeyId(), rk.GetOnOtherKeys())
	} else {
		fmt.Fprintf(env.stdout, "Root key: %s (%s)\n", rk.GetCurrentKeyId(), rk.GetError())
	}
	fmt.Fprintln(env.stdout)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PURPOSE\tBLOCK\tPLUGIN\tPID\tSTATE\tRESTARTS\tKEY ID\tLAST ERROR")
	for _, p := range st.GetPurposes() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", p.GetPurpose(), p.GetBlock(), p.GetPluginType(),
			p.GetPid(), p.GetState(), p.GetRestarts(), p.GetKeyId(), p.GetLastError())
	}
	return tw.Flush()
}

// scopeFlags parse a client command that acts on one scope named by -id.
func scopeFlags(env *cmdEnv, name string, args []string, extra func(fs *flag.FlagSet)) (*clientFlags, string, error) {
	var cf clientFlags
	var id string
	fs := newFlags(env, name, "")
	cf.register(fs, env)
	fs.StringVar(&id, "id", "", "scope id (required)")
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, "", err
	}
	if id == "" {
		return nil, "", errors.New("-id is required")
	}
	return &cf, id, nil
}

func runScopesCreate(env *cmdEnv, args []string) error {
	var name string
	cf, id, err := scopeFlags(env, "scopes create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "human-readable name")
	})
	if err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		sc, err := c.CreateScope(ctx, id, name)
		if err != nil {
			return err
		}
		return printScopes(env.stdout, cf.format, sc)
	})
}

func runScopesRead(env *cmdEnv, args []string) error {
	cf, id, err := scopeFlags(env, "scopes read", args, nil)
	if err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		sc, err := c.Scope(ctx, id)
		if err != nil {
			return err
		}
		return printScopes(env.stdout, cf.format, sc)
	})
}

func runScopesList(env *cmdEnv, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "scopes list", "")
	cf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		scopes, err := c.ListScopes(ctx)
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, &apiv1.ListScopesResponse{Scopes: scopes})
		}
		return printScopes(env.stdout, cf.format, scopes...)
	})
}

func printScopes(w io.Writer, format string, scopes ...*apiv1.Scope) error {
	if format == "json" && len(scopes) == 1 {
		return printJSON(w, scopes[0])
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tKEK VERSION\tDATA KEYS")
	for _, sc := range scopes {
		var keys []string
		for _, dk := range sc.GetDataKeys() {
			keys = append(keys, fmt.Sprintf("%s:v%d", dk.GetPurpose(), dk.GetVersion()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", sc.GetId(), sc.GetName(),
			sc.GetCreateTime().AsTime().Format("2006-01-02T15:04:05Z"), sc.GetRootKeyVersion(), strings.Join(keys, " "))
	}
	return tw.Flush()
}

// dataFlags are the flags of encrypt and decrypt.
type dataFlags struct {
	clientFlags
	scope   string
	purpose string
	aad     string
}

func (d *dataFlags) register(fs *flag.FlagSet, env *cmdEnv) {
	d.clientFlags.register(fs, env)
	fs.StringVar(&d.scope, "scope", "", "scope id (required)")
	fs.StringVar(&d.purpose, "purpose", "database", "data purpose: database, oplog, tokens or sessions")
	fs.StringVar(&d.aad, "aad", "", "additional authenticated data bound to the envelope")
}

// value reads the one positional argument, or standard input for "-".
func value(env *cmdEnv, fs *flag.FlagSet) ([]byte, error) {
	if fs.NArg() != 1 {
		return nil, usageErrorf(fs, "give the value as an argument, or - to read standard input")
	}
	arg := fs.Arg(0)
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(env.stdin, maxStdin+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > maxStdin {
		return nil, fmt.Errorf("standard input is over %d bytes", maxStdin)
	}
	return b, nil
}

// dataCommand parses encrypt, decrypt and reencrypt: the data flags and
// one value, the argument or standard input.
func dataCommand(env *cmdEnv, name, argName string, args []string) (*dataFlags, []byte, error) {
	var df dataFlags
	fs := newFlags(env, name, argName+"|-")
	df.register(fs, env)
	if err := parseArgs(fs, args, 1); err != nil {
		return nil, nil, err
	}
	if df.scope == "" {
		return nil, nil, errors.New("-scope is required")
	}
	in, err := value(env, fs)
	if err != nil {
		return nil, nil, err
	}
	return &df, in, nil
}

// decodeEnvelope reads the base64 an encrypt printed.
func decodeEnvelope(in []byte) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(in)))
	if err != nil {
		return nil, errors.New("the envelope is not valid base64 (give the output of brokerd encrypt)")
	}
	return b, nil
}

// printEnvelope prints an envelope as base64, or as JSON.
func printEnvelope(env *cmdEnv, format string, envelope []byte, version uint32) error {
	if format == "json" {
		return printJSON(env.stdout, &apiv1.EncryptResponse{Ciphertext: envelope, KeyVersion: version})
	}
	_, err := fmt.Fprintln(env.stdout, base64.StdEncoding.EncodeToString(envelope))
	return err
}

func runEncrypt(env *cmdEnv, args []string) error {
	df, plaintext, err := dataCommand(env, "encrypt", "VALUE", args)
	if err != nil {
		return err
	}
	return df.call(func(ctx context.Context, c *client.Client) error {
		envelope, version, err := c.Encrypt(ctx, df.scope, df.purpose, plaintext, []byte(df.aad))
		if err != nil {
			return err
		}
		return printEnvelope(env, df.format, envelope, version)
	})
}

func runDecrypt(env *cmdEnv, args []string) error {
	df, in, err := dataCommand(env, "decrypt", "ENVELOPE", args)
	if err != nil {
		return err
	}
	envelope, err := decodeEnvelope(in)
	if err != nil {
		return err
	}
	return df.call(func(ctx context.Context, c *client.Client) error {
		plaintext, err := c.Decrypt(ctx, df.scope, df.purpose, envelope, []byte(df.aad))
		if err != nil {
			return err
		}
		if df.format == "json" {
			return json.NewEncoder(env.stdout).Encode(struct {
				Plaintext []byte `json:"plaintext"`
			}{plaintext})
		}
		_, err = env.stdout.Write(plaintext)
		return err
	})
}

func runReEncrypt(env *cmdEnv, args []string) error {
	df, in, err := dataCommand(env, "reencrypt", "ENVELOPE", args)
	if err != nil {
		return err
	}
	envelope, err := decodeEnvelope(in)
	if err != nil {
		return err
	}
	return df.call(func(ctx context.Context, c *client.Client) error {
		out, version, err := c.ReEncrypt(ctx, df.scope, df.purpose, envelope, []byte(df.aad))
		if err != nil {
			return err
		}
		return printEnvelope(env, df.format, out, version)
	})
}

// call connects with the flags' credentials and runs fn with a context
// that Ctrl-C cancels; API errors come back readable.
func (c *clientFlags) call(fn func(ctx context.Context, cl *client.Client) error) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer c.close()
	ctx, cancel := callContext()
	defer cancel()
	if err := fn(ctx, cl); err != nil {
		return apiError(err, c.authHint())
	}
	return nil
}
