// Package config reads the broker's HCL configuration.
//
// A Config's zero values are the documented defaults; Load and Parse fill
// them in and reject conflicting settings before anything starts.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// Config is a parsed broker configuration.
type Config struct {
	// Listener is the API listener. Default: 127.0.0.1:9200 with TLS, which
	// needs a listener block to name the certificate; see Validate.
	Listener Listener
	// Storage is where wrapped keys are kept. Default: SQLite.
	Storage Storage
	// Plugins locates plugin executables.
	Plugins Plugins
	// KMS are the KMS blocks in file order.
	KMS []*KMS
	// Audit is where security events are written.
	Audit Audit
	// Auth tunes authentication.
	Auth Auth
	// LogLevel is one of trace, debug, info, warn, error. Default: info.
	LogLevel string
	// CacheSize is how many scopes keep unwrapped keys in memory. Default:
	// 0, the keyring's own default.
	CacheSize int

	// start is the start of the file, where problems of the whole file are
	// reported.
	start hcl.Range
	// hasListener records that the file has a listener block.
	hasListener bool
}

// Listener is the `listener "tcp"` block.
type Listener struct {
	// Address is host:port. Default: 127.0.0.1:9200.
	Address string
	// GRPCAddress, when set, is a second host:port that serves the gRPC
	// API alone on grpc-go's own transport, with the same TLS settings:
	// faster per call than gRPC on Address, which shares net/http's
	// HTTP/2 server with the JSON API. Default: none.
	GRPCAddress string
	// TLSDisable serves plain HTTP/2 and HTTP/1.1 when true.
	TLSDisable bool
	// TLSCertFile and TLSKeyFile are required unless TLSDisable is set.
	TLSCertFile string
	TLSKeyFile  string
	// MaxPlaintextBytes bounds one plaintext in an API request, at most
	// MaxPlaintextBytesLimit. Default: 0, the server's own (1 MiB).
	MaxPlaintextBytes int
}

// MaxPlaintextBytesLimit is the largest max_plaintext_bytes: the keyring
// seals at most 64 MiB into one envelope.
const MaxPlaintextBytesLimit = 64 << 20

// Storage is the `storage "<type>"` block.
type Storage struct {
	// Type is "sqlite" (default) or "postgres".
	Type string
	// Path is the SQLite database file. Empty when no storage block is
	// given: the caller picks the file.
	Path string
	// URL is the PostgreSQL connection URL; it may be an env:// or file://
	// reference, resolved by Parse, since it usually holds a password.
	URL string
}

// Plugins is the `plugins` block.
type Plugins struct {
	// Directory holds the kmsbroker-plugin-<type> executables. Default:
	// the directory of the running brokerd executable.
	Directory string
}

// Audit is the `audit` block.
type Audit struct {
	// Path is the JSON-lines audit file; "" writes no audit log.
	Path string
}

// Auth is the `auth` block.
type Auth struct {
	// OneTimeTokenValidity is how long a recovery or worker-auth token is
	// accepted after its creation. Default: DefaultOneTimeTokenValidity.
	OneTimeTokenValidity time.Duration
	// WorkerScopes are the scopes where authenticated workers may derive
	// session keys. Default: none.
	WorkerScopes []string
}

// DefaultOneTimeTokenValidity bounds how long a one-time token is
// accepted: room for a slow KMS and some clock drift, short enough that
// the store keeps few nonces.
const DefaultOneTimeTokenValidity = 5 * time.Minute

// MaxOneTimeTokenValidity caps one_time_token_validity. Brokers sharing a
// store keep every used nonce this long whatever their own setting, so a
// token one broker accepts cannot be replayed on another whose nonce
// record was already pruned; the cap keeps that record small.
const MaxOneTimeTokenValidity = time.Hour

// KMS is one `kms "<type>" { ... }` block.
type KMS struct {
	// Name identifies the block in logs and status: its type, or
	// "<type>#<n>" for the n-th block of the same type (n counts from 2),
	// so that names are unique within a config.
	Name string
	// Type is the block's label: the plugin type, for example "aead".
	Type string
	// Purposes are the external purposes this block serves.
	Purposes []purpose.Purpose
	// Settings are the plugin settings: every attribute that is not one of
	// the broker's own. Strings, numbers and bools are kept as text
	// ("true", "1.5"); a string "env://NAME" or "file://PATH" is replaced by
	// what it names. Values are secrets: never log them.
	Settings map[string]string
	// PluginPath selects an explicit plugin executable, as written: a
	// relative path is relative to brokerd's working directory. With it, the
	// block's type may be any name of lower-case letters, digits, "_" and
	// "-" (a third-party plugin).
	PluginPath string
	// PluginSHA256 pins the plugin executable's SHA-256 digest (hex).
	PluginSHA256 string
	// Timeout bounds each call to the plugin. Default: DefaultTimeout.
	Timeout time.Duration
	// StartTimeout bounds starting and configuring the plugin. Default:
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// HealthCheckInterval, when set, makes the broker check the KMS
	// itself (an encrypt and a decrypt) at this period. Default: never;
	// liveness uses the plugin's cheap health call.
	HealthCheckInterval time.Duration
	// MaxRestartBackoff caps the delay between restarts of a crashing
	// plugin. Default: the plugin host's, 30s.
	MaxRestartBackoff time.Duration
	// Range is where the block was declared, for error messages.
	Range hcl.Range

	// settingRanges is where each setting's name is written.
	settingRanges map[string]hcl.Range
}

// Defaults for KMS blocks.
const (
	// DefaultTimeout is long enough for a cloud KMS round trip with one
	// retry, short enough that a hung plugin does not stall a request.
	DefaultTimeout = 5 * time.Second
	// DefaultStartTimeout covers a cold plugin start on a loaded machine.
	DefaultStartTimeout = 10 * time.Second
)
