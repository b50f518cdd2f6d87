package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/daemon"
)

// reloadOnHangup reloads d on every SIGHUP: it reads the config again with
// load and applies it with Daemon.Reload. A config that cannot be read,
// decrypted or validated changes nothing; the error is logged. SIGHUPs
// that arrive during a reload are folded into one more reload after it.
// The returned function ends the watch, cutting short a reload in
// progress, and waits for it.
func reloadOnHangup(d *daemon.Daemon, load func(context.Context) (*config.Config, error), logger hclog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
			}
			logger.Info("SIGHUP: reloading the config")
			cfg, err := load(ctx)
			if err != nil {
				logger.Error("config reload failed; the running config stays", "error", err)
				continue
			}
			// Reload logs each failure itself.
			_ = d.Reload(ctx, cfg)
		}
	}()
	return func() {
		signal.Stop(sigs)
		cancel()
		<-done
	}
}
