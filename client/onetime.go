package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/configload"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// OneTimeCredentials mint a fresh recovery or worker-auth token for every
// call, through a plugin they start locally from a KMS config file. Close
// stops the plugin.
type OneTimeCredentials struct {
	kind   auth.Kind
	name   string
	router *purpose.Router
	plugin *pluginhost.Plugin
	now    func() time.Time
}

// OneTimeOptions tune how the local plugin is found and logged.
type OneTimeOptions struct {
	// PluginDirectory holds the plugin executables when the KMS file has no
	// plugins block. Default: beside the running executable.
	PluginDirectory string
	// Logger receives the plugin's log lines. nil discards them.
	Logger hclog.Logger
}

// RecoveryCredentials start the plugin of the one KMS block in the file at
// path whose purposes include recovery, and mint recovery tokens with it.
func RecoveryCredentials(ctx context.Context, path string, opts OneTimeOptions) (*OneTimeCredentials, error) {
	return startOneTime(ctx, path, purpose.Recovery, auth.KindRecovery, "", opts)
}

// WorkerCredentials start the plugin of the one KMS block in the file at
// path whose purposes include worker-auth, and mint tokens for the worker
// called name.
func WorkerCredentials(ctx context.Context, path, name string, opts OneTimeOptions) (*OneTimeCredentials, error) {
	if name == "" {
		return nil, errors.New("worker credentials: a worker name is required")
	}
	return startOneTime(ctx, path, purpose.WorkerAuth, auth.KindWorker, name, opts)
}

func startOneTime(ctx context.Context, path string, p purpose.Purpose, kind auth.Kind, name string, opts OneTimeOptions) (*OneTimeCredentials, error) {
	// The file may hold encrypted values; they are decrypted in memory
	// with its config block, like a server config.
	cfg, err := configload.Load(ctx, path, configload.Options{PluginDirectory: opts.PluginDirectory, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("%s credentials: %w", kind, err)
	}
	blk := cfg.Block(p)
	if blk == nil {
		return nil, fmt.Errorf("%s credentials: %s has no kms block with purpose %q", kind, path, p)
	}
	dir := cfg.Plugins.Directory
	if dir == "" {
		dir = opts.PluginDirectory
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	plugin, err := pluginhost.Start(ctx, pluginhost.BlockConfig(blk, dir, logger))
	if err != nil {
		return nil, fmt.Errorf("%s credentials: %w", kind, err)
	}
	router := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{p: plugin}, pluginhost.Retryable)
	return &OneTimeCredentials{kind: kind, name: name, router: router, plugin: plugin, now: time.Now}, nil
}

// Credential mints a new one-time token.
func (c *OneTimeCredentials) Credential(ctx context.Context) (string, error) {
	return auth.MintOneTime(ctx, c.router, c.kind, c.name, c.now())
}

// Close stops the local plugin.
func (c *OneTimeCredentials) Close() error {
	c.plugin.Stop()
	return nil
}
