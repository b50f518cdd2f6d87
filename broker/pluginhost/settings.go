package pluginhost

import (
	"fmt"
	"slices"
	"strings"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// Setting is one setting a plugin declares in its describe answer.
type Setting struct {
	Name string
	// Secret settings never appear in a log line or an error; print
	// their value as redacted.
	Secret bool
}

// Settings returns the settings the plugin's newest process declared, in
// the plugin's order; nil before a process has started.
func (p *Plugin) Settings() []Setting {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return nil
	}
	specs := p.last.desc.GetSettings()
	out := make([]Setting, 0, len(specs))
	for _, s := range specs {
		out = append(out, Setting{Name: s.GetName(), Secret: s.GetSecret()})
	}
	return out
}

// checkDeclared rejects settings the plugin does not declare in specs,
// before the plugin is configured: with c.CheckSettings when it is set,
// else with the host's own check.
func (c *Config) checkDeclared(specs []*pluginv1.SettingSpec) error {
	names := make([]string, 0, len(specs))
	known := make(map[string]bool, len(specs))
	for _, s := range specs {
		names = append(names, s.GetName())
		known[s.GetName()] = true
	}
	if c.CheckSettings == nil {
		return checkSettings(c.Settings, known)
	}
	if err := c.CheckSettings(names); err != nil {
		slices.Sort(names)
		return fmt.Errorf("%w (accepted: %s)", err, strings.Join(names, ", "))
	}
	return nil
}

// settingsErr reports settings the plugin refused in describe. It keeps
// err in the chain, so a caller can still tell a config error (with its
// file, line and column) by errors.As.
func (p *Plugin) settingsErr(path string, err error) error {
	return fmt.Errorf("start plugin block %q (%s): %w: %w", p.cfg.Name, path, ErrInvalidConfig, err)
}
