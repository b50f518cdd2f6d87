package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
)

// probeAAD is bound to the probes that prove a plugin works; nothing else
// uses it, so a probe blob is good for nothing else.
const probeAAD = "kmsbroker plugin probe"

// probeSize is the length of a probe: that of a scope key, the largest
// thing the broker wraps through a plugin.
const probeSize = 32

// CheckBlock starts blk's plugin from the plugin directory dir ("" for
// beside the running executable), proves it works as probe does, and
// stops it. It returns the plugin's Info as it was while running. It is
// what `brokerd config validate -check-plugins` does for each block.
func CheckBlock(ctx context.Context, blk *config.KMS, dir string, logger hclog.Logger) (pluginhost.Info, error) {
	p, err := pluginhost.Start(ctx, pluginhost.BlockConfig(blk, dir, logger))
	if err != nil {
		return pluginhost.Info{}, err
	}
	defer p.Stop()
	info := p.Info()
	if err := probe(ctx, p); err != nil {
		return info, err
	}
	return info, nil
}

// probe proves a started plugin serves: its cheap health call answers,
// and a random value encrypted by it decrypts to the same value.
func probe(ctx context.Context, p *pluginhost.Plugin) error {
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	value := make([]byte, probeSize)
	if _, err := rand.Read(value); err != nil {
		return fmt.Errorf("make probe: %w", err)
	}
	blob, err := p.Encrypt(ctx, value, []byte(probeAAD))
	if err != nil {
		return fmt.Errorf("probe encrypt: %w", err)
	}
	got, err := p.Decrypt(ctx, blob, []byte(probeAAD))
	if err != nil {
		return fmt.Errorf("probe decrypt: %w", err)
	}
	if subtle.ConstantTimeCompare(got, value) != 1 {
		return errors.New("probe: the plugin decrypted to another value")
	}
	return nil
}
