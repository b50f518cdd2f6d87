package daemon

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// redacted stands in for a secret setting's value in the log.
const redacted = "(redacted)"

// effective returns the log fields that say what the block runs now: its
// type, purposes, key id and pid; the plugin's configure metadata, which
// for awskms and transit holds the effective region, endpoint or address
// and, as <name>_source, whether each came from the config ("config"),
// the plugin's environment ("env") or a default ("default"); and the
// block's settings, each secret one (as the plugin declares it) redacted.
func (b *block) effective() []any {
	b.mu.RLock()
	cfg, p := b.cfg, b.plugin
	b.mu.RUnlock()

	purposes := make([]string, len(cfg.Purposes))
	for i, pur := range cfg.Purposes {
		purposes[i] = pur.String()
	}
	fields := []any{"block", cfg.Name, "plugin", cfg.Type, "purposes", strings.Join(purposes, ",")}
	if p == nil {
		return fields
	}
	info := p.Info()
	fields = append(fields, "key_id", info.KeyID, "pid", info.Pid, "plugin_version", info.PluginVersion)
	taken := map[string]bool{"block": true, "plugin": true, "purposes": true, "key_id": true,
		"pid": true, "plugin_version": true, "settings": true}
	for _, k := range slices.Sorted(maps.Keys(info.Metadata)) {
		name := k
		if taken[k] {
			name = "metadata_" + k
		}
		fields = append(fields, name, info.Metadata[k])
	}

	secret := map[string]bool{}
	declared := map[string]bool{}
	for _, s := range p.Settings() {
		declared[s.Name], secret[s.Name] = true, s.Secret
	}
	var settings []string
	for _, name := range slices.Sorted(maps.Keys(cfg.Settings)) {
		value := redacted
		// A setting the plugin did not declare was refused before
		// configure; should one appear, it is treated as secret.
		if declared[name] && !secret[name] {
			value = fmt.Sprintf("%q", cfg.Settings[name])
		}
		settings = append(settings, name+"="+value)
	}
	return append(fields, "settings", strings.Join(settings, " "))
}
