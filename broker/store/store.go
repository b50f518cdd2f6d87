// Package store persists kmsbroker's wrapped scope keys, client tokens and
// used recovery nonces in SQLite (the default) or PostgreSQL.
//
// The store only ever sees wrapped key material: KEK versions encrypted by
// the external root key and DEK versions encrypted by a KEK. It never
// unwraps anything. Both backends share one schema, applied at Open from
// migrations embedded in the binary, and one SQL implementation; only
// connection setup, migration locking and error classification differ.
//
// Concurrency: every change to a scope's keys is one transaction guarded by
// the scope's generation counter (compare-and-swap), so two brokers changing
// the same scope at once never interleave: one commits, the other gets
// ErrConflict and retries on fresh data. The generation is also what a
// broker polls to learn that its cached keys are stale.
package store

import (
	"context"
	"errors"
	"time"
)

// Backend kinds accepted by Open.
const (
	// KindSQLite opens a SQLite database file through the pure-Go
	// modernc.org/sqlite driver. The DSN is a file path.
	KindSQLite = "sqlite"
	// KindPostgres opens a PostgreSQL database through pgx. The DSN is a
	// postgres:// URL or a key=value connection string.
	KindPostgres = "postgres"
)

// Errors callers handle. Any other error from a Store is a backend failure
// (I/O, connection, corruption) and wraps the driver's error.
var (
	// ErrNotFound means the scope, token or key version asked for does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a write lost a race or would duplicate a unique
	// value: the scope or token already exists, or the scope's keys changed
	// since the generation the caller read. Reread and retry.
	ErrConflict = errors.New("conflict")
	// ErrNonceUsed means UseNonce saw the nonce before: the token carrying
	// it is a replay.
	ErrNonceUsed = errors.New("nonce already used")
	// ErrUnknownKind means Open was given a backend kind other than
	// KindSQLite or KindPostgres.
	ErrUnknownKind = errors.New("unknown store kind")
	// ErrSchemaTooNew means the database was migrated by a newer kmsbroker
	// than this one; running an older binary against it could corrupt it.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// Store is everything kmsbroker persists.
type Store interface {
	KeyStore
	AuthStore

	// Kind returns KindSQLite or KindPostgres.
	Kind() string
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the connection pool.
	Close() error
}

// KeyStore persists scopes and their wrapped key versions.
type KeyStore interface {
	// CreateScope stores a new scope with its first key versions in one
	// transaction. It returns ErrConflict if the scope id, or any version
	// id, already exists. The scope's Generation is stored as 1.
	CreateScope(ctx context.Context, keys ScopeKeys) error
	// Scope returns one scope with its newest version numbers, or
	// ErrNotFound.
	Scope(ctx context.Context, id string) (Scope, error)
	// ListScopes returns every scope with its newest version numbers,
	// ordered by id.
	ListScopes(ctx context.Context) ([]Scope, error)
	// ScopeKeys returns a scope and all of its key versions, destroyed ones
	// included, read in one consistent snapshot; or ErrNotFound.
	ScopeKeys(ctx context.Context, id string) (ScopeKeys, error)
	// ScopeGeneration returns the scope's generation, a counter that grows
	// with every change to its keys; or ErrNotFound. It is one indexed
	// read, cheap enough to poll.
	ScopeGeneration(ctx context.Context, id string) (uint64, error)
	// UpdateKeys applies changes to a scope's keys in one transaction if
	// the scope's generation is still generation, and returns the new
	// generation. It returns ErrConflict, changing nothing, if the
	// generation moved, a new version already exists, a version to update
	// or destroy is missing or already destroyed, or destroying a root key
	// version would orphan a live data key version; ErrNotFound if the
	// scope does not exist.
	UpdateKeys(ctx context.Context, scopeID string, generation uint64, ch KeyChanges) (uint64, error)
	// RootKeyCounts returns, for each external key id that wraps live
	// root key versions, how many it wraps, across all scopes.
	RootKeyCounts(ctx context.Context) (map[string]int, error)
}

// AuthStore persists client tokens and the nonces of used one-time tokens.
type AuthStore interface {
	// CreateToken stores a token. It returns ErrConflict if the id or the
	// hash already exists.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose Hash is hash, revoked and expired
	// ones included (the caller decides), or ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns every token ordered by creation time, then id.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the token revoked at at. Revoking a revoked token
	// keeps its first revocation time and returns nil. It returns
	// ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// UseNonce records a one-time token's nonce until expires. It returns
	// ErrNonceUsed if the nonce was recorded before and has not yet
	// expired. Only a SHA-256 of the nonce is stored. Each call first
	// deletes the nonces that expired before the current time, so the
	// table holds only the nonces of tokens still inside their window; a
	// caller must therefore reject tokens past expires itself.
	UseNonce(ctx context.Context, nonce []byte, expires time.Time) error
}

// Scope is a tenant boundary with its own keys.
type Scope struct {
	ID         string
	Name       string
	CreateTime time.Time
	// Generation grows with every change to the scope's keys.
	Generation uint64
	// RootVersion is the newest root key (KEK) version. Scope and
	// ListScopes fill it; ScopeKeys leaves it zero.
	RootVersion uint32
	// DataVersions maps each data purpose to its newest data key (DEK)
	// version. Scope and ListScopes fill it; ScopeKeys leaves it nil.
	DataVersions map[string]uint32
}

// RootKeyVersion is one version of a scope's KEK, wrapped by the external
// root key.
type RootKeyVersion struct {
	Version uint32
	// ID is the version's stable id, unique across the store.
	ID string
	// Blob is the proto encoding of the wrapping.BlobInfo that the root
	// key made; nil once the version is destroyed.
	Blob []byte
	// WrappingKeyID names the external key that made Blob.
	WrappingKeyID string
	CreateTime    time.Time
	// DestroyTime is zero while the version is live.
	DestroyTime time.Time
}

// DataKeyVersion is one version of a scope's DEK for one data purpose,
// wrapped by one of the scope's KEK versions.
type DataKeyVersion struct {
	Purpose string
	Version uint32
	// ID is the version's stable id, unique across the store.
	ID string
	// RootVersion is the KEK version that wrapped this DEK version.
	RootVersion uint32
	// Wrapped is the DEK encrypted by the KEK; nil once destroyed.
	Wrapped     []byte
	CreateTime  time.Time
	DestroyTime time.Time
}

// ScopeKeys is a scope with all of its key versions. Root is ordered by
// version; Data by purpose, then version.
type ScopeKeys struct {
	Scope Scope
	Root  []RootKeyVersion
	Data  []DataKeyVersion
}

// KeyChanges is one transactional change to a scope's keys.
type KeyChanges struct {
	// AddRoot and AddData insert new versions.
	AddRoot []RootKeyVersion
	AddData []DataKeyVersion
	// RewrapRoot replaces Blob and WrappingKeyID of live root key
	// versions, matched by Version.
	RewrapRoot []RootKeyVersion
	// RewrapData replaces Wrapped and RootVersion of live data key
	// versions, matched by Purpose and Version.
	RewrapData []DataKeyVersion
	// Destroy erases the wrapped material of the live versions with these
	// stable ids, root or data, and records DestroyTime.
	Destroy     []string
	DestroyTime time.Time
}

// Token is a client API token. Only a hash of the secret is stored.
type Token struct {
	ID   string
	Name string
	Role string
	// Scopes the token may act on; its meaning (wildcards and so on)
	// belongs to the auth package.
	Scopes []string
	// Hash is the SHA-256 of the token secret.
	Hash       []byte
	CreateTime time.Time
	// ExpireTime is zero for a token that never expires.
	ExpireTime time.Time
	// RevokeTime is zero while the token is not revoked.
	RevokeTime time.Time
}
