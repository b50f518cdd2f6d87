// Package pluginhost runs kmsbroker's wrapper plugins: it finds a KMS
// block's plugin executable, optionally pins it by SHA-256, starts it as a
// separate process with a clean environment, handshakes over go-plugin
// gRPC with automatic mTLS, configures it, and calls it with a deadline on
// every call. A Plugin owns one block's process for its whole life: it
// restarts a process that exits or stops answering, with exponential
// backoff and jitter, and reports its state for status and metrics.
//
// Plugins never outlive the host: on Linux each one runs in its own
// process group and is killed by the kernel when the host dies, even by
// SIGKILL.
package pluginhost

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of Config.
const (
	// DefaultTimeout bounds one call: long enough for a cloud KMS round
	// trip with one retry, short enough that a hung plugin does not stall
	// a request for long.
	DefaultTimeout = 5 * time.Second
	// DefaultStartTimeout bounds starting, handshaking and configuring a
	// plugin: a cold start on a loaded machine plus a KMS key lookup.
	DefaultStartTimeout = 10 * time.Second
	// DefaultLivenessInterval is how often a ready plugin's cheap health
	// call is made. The call never reaches the KMS, so it is frequent
	// enough to notice a hung process within seconds.
	DefaultLivenessInterval = 5 * time.Second
	// DefaultRecheckInterval is how often a degraded plugin is checked
	// with a real encrypt and decrypt until one succeeds. A degraded root
	// keeps the broker unready, and with warm caches no request may reach
	// the plugin to show it has recovered; the check runs only while
	// degraded, so it costs at most six KMS round trips a minute after a
	// real failure, and nothing in steady state.
	DefaultRecheckInterval = 10 * time.Second
)

// Config describes one KMS block's plugin. Zero values are the documented
// defaults. Settings may hold secrets: they go to the plugin and nowhere
// else, and are scrubbed from every error and log line.
type Config struct {
	// Name is the block's name in logs and status, for example "aead" or
	// "aead#2". Required.
	Name string
	// Type is the plugin type; the executable is kmsbroker-plugin-<Type>.
	// Required; lower-case letters, digits, '-' and '_'.
	Type string
	// Directory holds plugin executables. "" means the directory of the
	// running executable.
	Directory string
	// Path is an explicit executable (plugin_path); it overrides Directory.
	Path string
	// SHA256 optionally pins the executable's SHA-256 digest, in hex. It is
	// checked before every start, including restarts.
	SHA256 string
	// Settings are the plugin's own settings (may contain secrets). A
	// setting named disallow_env_vars = true also withholds the backend's
	// environment variables from the process.
	Settings map[string]string
	// Timeout bounds each call. 0 means DefaultTimeout.
	Timeout time.Duration
	// StartTimeout bounds start, handshake and configure together, exactly,
	// also when it is longer than go-plugin's own default. 0 means
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// MaxRestartBackoff caps the delay between restarts of a crashing
	// plugin. 0 means DefaultMaxRestartBackoff.
	MaxRestartBackoff time.Duration
	// LivenessInterval is the period of the cheap health call that
	// detects a hung process. 0 means DefaultLivenessInterval.
	LivenessInterval time.Duration
	// HealthCheckInterval, when positive, turns on a check that really
	// calls the KMS (an encrypt and a decrypt of a random probe) at that
	// period; a failure marks the plugin degraded. 0 (the default) never
	// calls the KMS on its own, so the check's cost is opt-in and bounded.
	HealthCheckInterval time.Duration
	// RecheckInterval is the period of the KMS check while the plugin is
	// degraded (see DefaultRecheckInterval). 0 means the default.
	RecheckInterval time.Duration
	// Logger receives the host's lines and the plugin's own log lines,
	// tagged block=<Name> plugin=<Type>. nil discards them.
	Logger hclog.Logger
	// Registerer, when set, receives the plugin metrics (see metrics.go).
	// Plugins may share one Registerer.
	Registerer prometheus.Registerer
	// MetricsPaused starts the plugin without recording its block's
	// series until TakeOverMetrics: a reload's candidate must not
	// overwrite the series of the plugin serving the same block.
	MetricsPaused bool
	// CheckSettings, when set, is given the names of the settings the
	// plugin declares and rejects Settings that do not fit them, before
	// the plugin is configured. BlockConfig sets it to the config's check,
	// whose errors carry file, line, column and a did-you-mean hint. nil
	// uses the host's own check, which names the first unknown setting.
	CheckSettings func(declared []string) error
	// SettingPosition, when set, says where a setting is written in the
	// config ("file:line,col-col"); a configure refusal that the plugin
	// pins on one setting is then prefixed with it. BlockConfig sets it.
	SettingPosition func(setting string) string
}

// Errors callers handle. Every error from this package that wraps one of
// them also names the block; none carries a setting value, a plaintext or
// key bytes.
var (
	// ErrInvalidConfig means the block's settings are wrong: an unknown
	// setting, a malformed value, or settings the plugin refused. The
	// message names the setting, never its value. Retrying will not help,
	// unless the error also wraps ErrSettingRefused.
	ErrInvalidConfig = errors.New("invalid plugin configuration")
	// ErrSettingRefused accompanies ErrInvalidConfig when the plugin's
	// KMS turned a setting down (a key not found or disabled, a token or
	// credentials denied) rather than the value being malformed: the
	// same settings may pass later, so a broker keeps retrying.
	ErrSettingRefused = errors.New("setting refused by the kms")
	// ErrUnavailable means the plugin or its KMS could not serve the call
	// now: the process is gone, restarting, not answering, or the call ran
	// out of time. Retryable says whether repeating the call may help.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrPluginNotFound means there is no executable plugin at the
	// resolved path.
	ErrPluginNotFound = errors.New("plugin not found")
	// ErrChecksumMismatch means the executable's SHA-256 digest differs
	// from the pinned one. The message names both digests.
	ErrChecksumMismatch = errors.New("plugin checksum mismatch")
	// ErrBadPlugin means the executable does not behave as a kmsbroker
	// plugin: it wrote to stdout before the handshake, speaks another
	// protocol version, or answered nonsense. The message says what was
	// seen. Replace the binary; retrying will not help.
	ErrBadPlugin = errors.New("plugin broke the plugin protocol")
	// ErrDecrypt means the plugin could not decrypt the blob: it is
	// corrupt, was made by another key, or the AAD differs. It is opaque
	// on purpose; details go to the Debug log.
	ErrDecrypt = errors.New("decrypt failed")
)

// States of a Plugin, as Info reports them.
const (
	// StateStarting: the first process is being started.
	StateStarting = "starting"
	// StateReady: the process serves calls.
	StateReady = "ready"
	// StateDegraded: the process serves calls but the opt-in KMS health
	// check is failing.
	StateDegraded = "degraded"
	// StateRestarting: the process was lost and a new one is being
	// started, with backoff.
	StateRestarting = "restarting"
	// StateFailed: restarts fail for a reason retrying is unlikely to fix
	// (bad settings, missing or mismatched binary). The host keeps trying
	// at the longest backoff so a repaired binary is picked up.
	StateFailed = "failed"
	// StateStopped: Stop was called.
	StateStopped = "stopped"
)

// Info is a snapshot of a Plugin for status output.
type Info struct {
	Name          string
	Type          string
	Path          string
	KeyID         string
	PluginVersion string
	// AAD is true when the plugin binds AAD itself. When false the host
	// binds it (see Encrypt), so AAD is enforced either way.
	AAD       bool
	Pid       int
	State     string
	Restarts  int
	LastError string
	// Metadata is the plugin's non-secret configuration metadata.
	Metadata map[string]string
}
