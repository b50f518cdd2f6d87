package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/config/markers"
	"github.com/kmsbroker/kmsbroker/broker/configload"
	"github.com/kmsbroker/kmsbroker/broker/daemon"
)

// configFlags are the flags of the config commands.
type configFlags struct {
	path      string
	kmsPath   string
	overwrite bool
}

func (c *configFlags) register(env *cmdEnv, name, args string) *flag.FlagSet {
	fs := newFlags(env, name, args)
	fs.StringVar(&c.path, "config", env.getenv("BROKER_CONFIG"), "config file (env BROKER_CONFIG)")
	fs.StringVar(&c.kmsPath, "config-kms", env.getenv("BROKER_CONFIG_KMS"),
		"file whose kms block serves purpose config (env BROKER_CONFIG_KMS; default: the config file's own)")
	return fs
}

// cliLogger shows the config plugin's warnings and errors on stderr;
// its lifecycle lines would only clutter a one-shot command.
func cliLogger(env *cmdEnv) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "brokerd", Level: hclog.Warn, Output: env.stderr})
}

// read reads -config and scans its markers.
func (c *configFlags) read() ([]byte, []markers.Marker, error) {
	if c.path == "" {
		return nil, nil, errors.New("-config is required")
	}
	src, err := configload.Read(c.path)
	if err != nil {
		return nil, nil, err
	}
	ms, err := markers.Scan(src, c.path)
	if err != nil {
		return nil, nil, err
	}
	return src, ms, nil
}

func hasOp(ms []markers.Marker, op markers.Op) bool {
	for _, m := range ms {
		if m.Op == op {
			return true
		}
	}
	return false
}

// runConfigEncrypt replaces every {{encrypt(VALUE)}} of a config file by
// {{decrypt(CIPHERTEXT)}}, made by the plugin of the kms block serving
// config.
func runConfigEncrypt(env *cmdEnv, args []string) error {
	var cf configFlags
	fs := cf.register(env, "config encrypt", "")
	fs.BoolVar(&cf.overwrite, "overwrite", false, "replace the file (atomically, keeping its mode) instead of writing to standard output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, ms, err := cf.read()
	if err != nil {
		return err
	}
	if !hasOp(ms, markers.OpEncrypt) {
		fmt.Fprintf(env.stderr, "brokerd config encrypt: %s has no {{encrypt(...)}} values\n", cf.path)
		return cf.unchanged(env, src)
	}

	ctx, cancel := callContext()
	defer cancel()
	codec, err := configload.Open(ctx, src, cf.path, configload.Options{KMSPath: cf.kmsPath, Logger: cliLogger(env)})
	if err != nil {
		return err
	}
	defer codec.Close()
	out, err := markers.Encrypt(ctx, src, cf.path, codec.Encrypt)
	if err != nil {
		return err
	}
	return cf.output(env, out, cf.overwrite)
}

// runConfigDecrypt reverses config encrypt, or with -strip writes the bare
// values.
func runConfigDecrypt(env *cmdEnv, args []string) error {
	var cf configFlags
	var strip bool
	fs := cf.register(env, "config decrypt", "")
	fs.BoolVar(&cf.overwrite, "overwrite", false, "replace the file (atomically, keeping its mode) instead of writing to standard output")
	fs.BoolVar(&strip, "strip", false, "write bare values instead of {{encrypt(VALUE)}}, also for values not yet encrypted")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, ms, err := cf.read()
	if err != nil {
		return err
	}
	if !hasOp(ms, markers.OpDecrypt) && (!strip || len(ms) == 0) {
		fmt.Fprintf(env.stderr, "brokerd config decrypt: %s has no {{decrypt(...)}} values\n", cf.path)
		return cf.unchanged(env, src)
	}

	ctx, cancel := callContext()
	defer cancel()
	opts := configload.Options{KMSPath: cf.kmsPath, Logger: cliLogger(env)}
	var out []byte
	if strip {
		out, err = configload.Strip(ctx, src, cf.path, opts)
	} else {
		var codec *configload.Codec
		codec, err = configload.Open(ctx, src, cf.path, opts)
		if err != nil {
			return err
		}
		defer codec.Close()
		out, err = markers.Decrypt(ctx, src, cf.path, codec.Decrypt)
	}
	if err != nil {
		return err
	}
	return cf.output(env, out, cf.overwrite)
}

// runConfigValidate checks a config file without serving anything: its
// markers, syntax and settings, and with -check-plugins every block's
// plugin.
func runConfigValidate(env *cmdEnv, args []string) error {
	var cf configFlags
	var checkPlugins, server bool
	fs := cf.register(env, "config validate", "")
	fs.BoolVar(&checkPlugins, "check-plugins", false, "also start, configure and probe every kms block's plugin (calls each KMS)")
	fs.BoolVar(&server, "server", true, "check the file as a brokerd server config (a root block and a listener are required); -server=false checks a client-side KMS file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, ms, err := cf.read()
	if err != nil {
		return err
	}
	if len(ms) > 0 && cf.kmsPath == "" {
		// Reports a marker inside the config block as a cycle even when
		// no value needs decrypting.
		if _, err := config.ConfigBlock(src, cf.path); err != nil {
			return err
		}
	}

	ctx, cancel := callContext()
	defer cancel()
	logger := cliLogger(env)
	plain, err := configload.Strip(ctx, src, cf.path, configload.Options{KMSPath: cf.kmsPath, Logger: logger})
	if err != nil {
		return err
	}
	cfg, err := config.Parse(plain, cf.path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.ValidateOptions{Server: server}); err != nil {
		return err
	}

	var errs []error
	if checkPlugins {
		for _, blk := range cfg.KMS {
			info, err := daemon.CheckBlock(ctx, blk, cfg.Plugins.Directory, logger)
			if err != nil {
				errs = append(errs, fmt.Errorf("kms block %s: %w", blk.Name, err))
				continue
			}
			fmt.Fprintf(env.stdout, "kms block %s (%s): plugin %s %s configured, key id %q, probe ok\n",
				blk.Name, purposeList(blk), info.Type, info.PluginVersion, info.KeyID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s: valid\n", cf.path)
	return nil
}

func purposeList(blk *config.KMS) string {
	names := make([]string, len(blk.Purposes))
	for i, p := range blk.Purposes {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}

// unchanged is the output of a command with nothing to do: the file as
// it is on standard output, or, with -overwrite, the file left alone.
func (c *configFlags) unchanged(env *cmdEnv, src []byte) error {
	if c.overwrite {
		return nil
	}
	return c.output(env, src, false)
}

// output writes out to standard output, or over the config file when
// overwrite is set.
func (c *configFlags) output(env *cmdEnv, out []byte, overwrite bool) error {
	if !overwrite {
		_, err := env.stdout.Write(out)
		return err
	}
	return replaceFile(c.path, out)
}

// replaceFile replaces the file at path (the file a symbolic link points
// to, for a link) with data, atomically: a reader sees the old file or
// the new one, never a mix. The new file keeps the old one's permissions.
//
// TODO: the owner and group are not kept; a root-run command leaves the
// file owned by root.
func replaceFile(path string, data []byte) (err error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	// Make the rename itself durable; a directory that cannot be synced
	// (some file systems refuse) still has the new file.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
