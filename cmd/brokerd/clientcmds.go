package main

import (
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
	address string
	token   string
	caCert  string
	format  string
}

func (c *clientFlags) register(fs *flag.FlagSet, env *cmdEnv) {
	addr := env.getenv("BROKER_ADDR")
	if addr == "" {
		addr = client.DefaultAddress
	}
	fs.StringVar(&c.address, "address", addr, "broker URL (env BROKER_ADDR)")
	fs.StringVar(&c.token, "token", env.getenv("BROKER_TOKEN"), "client token (env BROKER_TOKEN)")
	fs.StringVar(&c.caCert, "ca-cert", env.getenv("BROKER_CACERT"), "PEM file that verifies an https broker (env BROKER_CACERT)")
	fs.StringVar(&c.format, "format", "table", "output format: table or json")
}

func (c *clientFlags) client() (*client.Client, error) {
	if c.format != "table" && c.format != "json" {
		return nil, fmt.Errorf("-format=%q: use table or json", c.format)
	}
	cfg := client.Config{Address: c.address, CACertFile: c.caCert}
	if c.token != "" {
		cfg.Credentials = client.Token(c.token)
	}
	return client.New(cfg)
}

// callContext is cancelled by Ctrl-C.
func callContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// apiError makes a gRPC status readable: the code in words, then the
// broker's message.
func apiError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("broker unavailable: %s", st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("not authenticated: %s (set -token or BROKER_TOKEN)", st.Message())
	}
	return errors.New(st.Message())
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func runStatus(env *cmdEnv, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "status", "")
	cf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return apiError(err)
	}
	if cf.format == "json" {
		return printJSON(env.stdout, st)
	}
	fmt.Fprintf(env.stdout, "Version: %s\nReady:   %t\nStore:   %s (ok: %t)\n\n", st.GetVersion(), st.GetReady(), st.GetStore().GetType(), st.GetStore().GetOk())
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PURPOSE\tBLOCK\tPLUGIN\tPID\tSTATE\tRESTARTS\tKEY ID\tLAST ERROR")
	for _, p := range st.GetPurposes() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", p.GetPurpose(), p.GetBlock(), p.GetPluginType(),
			p.GetPid(), p.GetState(), p.GetRestarts(), p.GetKeyId(), p.GetLastError())
	}
	return tw.Flush()
}

func runScopesCreate(env *cmdEnv, args []string) error {
	var cf clientFlags
	var id, name string
	fs := newFlags(env, "scopes create", "")
	cf.register(fs, env)
	fs.StringVar(&id, "id", "", "scope id (required)")
	fs.StringVar(&name, "name", "", "human-readable name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id == "" {
		return errors.New("-id is required")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	sc, err := c.CreateScope(ctx, id, name)
	if err != nil {
		return apiError(err)
	}
	return printScopes(env.stdout, cf.format, sc)
}

func runScopesRead(env *cmdEnv, args []string) error {
	var cf clientFlags
	var id string
	fs := newFlags(env, "scopes read", "")
	cf.register(fs, env)
	fs.StringVar(&id, "id", "", "scope id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id == "" {
		return errors.New("-id is required")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	sc, err := c.Scope(ctx, id)
	if err != nil {
		return apiError(err)
	}
	return printScopes(env.stdout, cf.format, sc)
}

func runScopesList(env *cmdEnv, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "scopes list", "")
	cf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	scopes, err := c.ListScopes(ctx)
	if err != nil {
		return apiError(err)
	}
	if cf.format == "json" {
		return printJSON(env.stdout, &apiv1.ListScopesResponse{Scopes: scopes})
	}
	return printScopes(env.stdout, cf.format, scopes...)
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
		fs.Usage()
		return nil, errUsage
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

func runEncrypt(env *cmdEnv, args []string) error {
	var df dataFlags
	fs := newFlags(env, "encrypt", "VALUE|-")
	df.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if df.scope == "" {
		return errors.New("-scope is required")
	}
	plaintext, err := value(env, fs)
	if err != nil {
		return err
	}
	c, err := df.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	env64, version, err := c.Encrypt(ctx, df.scope, df.purpose, plaintext, []byte(df.aad))
	if err != nil {
		return apiError(err)
	}
	if df.format == "json" {
		return printJSON(env.stdout, &apiv1.EncryptResponse{Ciphertext: env64, KeyVersion: version})
	}
	_, err = fmt.Fprintln(env.stdout, base64.StdEncoding.EncodeToString(env64))
	return err
}

func runDecrypt(env *cmdEnv, args []string) error {
	var df dataFlags
	fs := newFlags(env, "decrypt", "ENVELOPE|-")
	df.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if df.scope == "" {
		return errors.New("-scope is required")
	}
	in, err := value(env, fs)
	if err != nil {
		return err
	}
	envelope, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(in)))
	if err != nil {
		return errors.New("the envelope is not valid base64 (give the output of brokerd encrypt)")
	}
	c, err := df.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := callContext()
	defer cancel()
	plaintext, err := c.Decrypt(ctx, df.scope, df.purpose, envelope, []byte(df.aad))
	if err != nil {
		return apiError(err)
	}
	if df.format == "json" {
		return json.NewEncoder(env.stdout).Encode(struct {
			Plaintext []byte `json:"plaintext"`
		}{plaintext})
	}
	_, err = env.stdout.Write(plaintext)
	return err
}
