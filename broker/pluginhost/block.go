package pluginhost

import (
	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/config"
)

// BlockConfig returns the plugin configuration of a KMS block. directory
// is the config's plugin directory ("" for beside the executable).
func BlockConfig(blk *config.KMS, directory string, logger hclog.Logger) Config {
	return Config{
		Name:         blk.Name,
		Type:         blk.Type,
		Directory:    directory,
		Path:         blk.PluginPath,
		SHA256:       blk.PluginSHA256,
		Settings:     blk.Settings,
		Timeout:      blk.Timeout,
		StartTimeout: blk.StartTimeout,
		// The KMS check is opt-in per block: it costs a real KMS call.
		HealthCheckInterval: blk.HealthCheckInterval,
		MaxRestartBackoff:   blk.MaxRestartBackoff,
		Logger:              logger,
		CheckSettings:       blk.CheckSettings,
		SettingPosition:     blk.SettingPosition,
	}
}
