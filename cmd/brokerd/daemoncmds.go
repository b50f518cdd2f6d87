package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/configload"
	"github.com/kmsbroker/kmsbroker/broker/daemon"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
)

func newLogger(env *cmdEnv, level string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "brokerd",
		Level:  hclog.LevelFromString(level),
		Output: env.stderr,
	})
}

// waitForSignal blocks until SIGINT or SIGTERM, or until the daemon's API
// server stops on its own.
func waitForSignal(d *daemon.Daemon, logger hclog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case sig := <-sigs:
		logger.Info("shutting down", "signal", sig.String())
		return nil
	case err := <-d.Done():
		if err != nil {
			return fmt.Errorf("API server: %w", err)
		}
		return nil
	}
}

func runServer(env *cmdEnv, args []string) error {
	var path, kmsPath, level string
	fs := newFlags(env, "server", "")
	fs.StringVar(&path, "config", env.getenv("BROKER_CONFIG"), "config file (env BROKER_CONFIG)")
	fs.StringVar(&kmsPath, "config-kms", env.getenv("BROKER_CONFIG_KMS"),
		"file whose kms block serves purpose config, to decrypt the config's {{decrypt(...)}} values (env BROKER_CONFIG_KMS; default: the config file's own)")
	fs.StringVar(&level, "log-level", "", "log level; overrides the config's log_level, also on reload")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if path == "" {
		return errors.New("-config is required")
	}
	if level != "" && !slices.Contains(config.LogLevels, level) {
		return fmt.Errorf("-log-level=%q: use one of %s", level, strings.Join(config.LogLevels, ", "))
	}
	// A SIGHUP while the broker starts must not end it; reloadOnHangup
	// takes the signal over once the broker is up.
	signal.Ignore(syscall.SIGHUP)
	logger := newLogger(env, level)
	// load reads the config with its values decrypted in memory; SIGHUP
	// calls it again.
	load := func(ctx context.Context) (*config.Config, error) {
		cfg, err := configload.Load(ctx, path, configload.Options{KMSPath: kmsPath, Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := cfg.Validate(config.ValidateOptions{Server: true}); err != nil {
			return nil, err
		}
		if level != "" {
			cfg.LogLevel = level
		}
		return cfg, nil
	}
	ctx := context.Background()
	cfg, err := load(ctx)
	if err != nil {
		return err
	}
	logger.SetLevel(hclog.LevelFromString(cfg.LogLevel))

	d, err := daemon.Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.Stop(ctx)
	stopReload := reloadOnHangup(d, load, logger)
	defer stopReload()
	return waitForSignal(d, logger)
}

// devConfig is the dev broker's config: each external purpose on its own
// aead plugin with a fresh key, so the recovery file handed out holds the
// recovery key only.
const devConfig = `
listener "tcp" {
  address     = %q
  tls_disable = true
  %s
}
storage "sqlite" { path = %q }
%s
kms "aead" {
  purpose = ["root"]
  key     = %q
  key_id  = "dev-root"
}
kms "aead" {
  purpose = ["worker-auth"]
  key     = %q
  key_id  = "dev-worker-auth"
}
%s
kms "aead" {
  purpose = ["config"]
  key     = %q
  key_id  = "dev-config"
}
`

// devRecoveryBlock is written to recovery.hcl for recovery-token clients.
const devRecoveryBlock = `kms "aead" {
  purpose = ["recovery"]
  key     = %q
  key_id  = "dev-recovery"
}
`

func randomKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func runDev(env *cmdEnv, args []string) error {
	var listen, grpcListen, token, dataDir, level, pluginDir string
	fs := newFlags(env, "dev", "")
	fs.StringVar(&listen, "listen", "127.0.0.1:9200", "API address")
	fs.StringVar(&grpcListen, "grpc-listen", "", "also serve the gRPC API alone at this address (the listener's grpc_address; default: none)")
	fs.StringVar(&token, "dev-token", env.getenv("BROKER_DEV_TOKEN"), "admin token to use instead of a random one (must look like a client token: kmsb. + 43 base64url chars)")
	fs.StringVar(&dataDir, "data-dir", "", "directory for the database and recovery.hcl (default: a new temporary directory, removed at exit)")
	fs.StringVar(&level, "log-level", "info", "log level")
	fs.StringVar(&pluginDir, "plugin-dir", "", "plugin directory (default: beside brokerd)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if token != "" && !auth.ValidTokenSyntax(token) {
		return errors.New("-dev-token must be kmsb. followed by 43 base64url characters (32 bytes)")
	}

	if dataDir == "" {
		dir, err := os.MkdirTemp("", "brokerd-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	} else if _, err := os.Stat(filepath.Join(dataDir, "broker.db")); err == nil {
		// Dev keys are new on every start, so an old dev database could
		// never be decrypted again.
		return fmt.Errorf("%s already holds a dev database whose keys are gone; remove it or use another -data-dir",
			filepath.Join(dataDir, "broker.db"))
	}

	var keys [4]string
	for i := range keys {
		k, err := randomKey()
		if err != nil {
			return fmt.Errorf("generate dev key: %w", err)
		}
		keys[i] = k
	}
	recoveryBlock := fmt.Sprintf(devRecoveryBlock, keys[2])
	pluginsBlock := ""
	if pluginDir != "" {
		pluginsBlock = fmt.Sprintf("plugins { directory = %q }", pluginDir)
	}
	grpcAttr := ""
	if grpcListen != "" {
		grpcAttr = fmt.Sprintf("grpc_address = %q", grpcListen)
	}
	src := fmt.Sprintf(devConfig, listen, grpcAttr, filepath.Join(dataDir, "broker.db"), pluginsBlock,
		keys[0], keys[1], recoveryBlock, keys[3])
	cfg, err := config.Parse([]byte(src), "dev.hcl")
	if err != nil {
		return fmt.Errorf("dev config: %w", err)
	}
	if err := cfg.Validate(config.ValidateOptions{Server: true}); err != nil {
		return fmt.Errorf("dev config: %w", err)
	}
	recoveryPath := filepath.Join(dataDir, "recovery.hcl")
	if err := os.WriteFile(recoveryPath, []byte(recoveryBlock), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", recoveryPath, err)
	}

	logger := newLogger(env, level)
	ctx := context.Background()
	d, err := daemon.StartWith(ctx, cfg, logger, func(ctx context.Context, d *daemon.Daemon) error {
		if _, err := d.Keyring().CreateScope(ctx, "global", "Global scope"); err != nil && !errors.Is(err, keyring.ErrScopeExists) {
			return fmt.Errorf("create scope global: %w", err)
		}
		var err error
		if token, err = d.MintToken(ctx, token, "dev-admin", auth.RoleAdmin, nil, 0); err != nil {
			return fmt.Errorf("create dev token: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer d.Stop(ctx)

	addr := "http://" + d.Addr().String()
	if ga := d.GRPCAddr(); ga != nil {
		fmt.Fprintf(env.stdout, "\ngRPC only: http://%s\n", ga)
	}
	fmt.Fprintf(env.stdout, `
brokerd is running in dev mode: keys live in %s and vanish with it.
Do not run dev mode in production.

    export BROKER_ADDR=%s
    export BROKER_TOKEN=%s

Recovery KMS block: %s

Try:
    brokerd scopes create -id=o_demo
    echo -n secret | brokerd encrypt -scope=o_demo -purpose=database -

`, dataDir, addr, token, recoveryPath)
	return waitForSignal(d, logger)
}

func runVersion(env *cmdEnv, _ []string) error {
	_, err := fmt.Fprintln(env.stdout, "brokerd", daemon.Version)
	return err
}
