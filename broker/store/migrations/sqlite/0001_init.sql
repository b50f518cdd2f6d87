-- Schema 1: scopes, their wrapped key versions, client tokens and used
-- nonces. Times are unix nanoseconds (UTC); a NULL time means "not yet".
-- The PostgreSQL file of the same number defines the same tables.

CREATE TABLE scopes (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	generation INTEGER NOT NULL CHECK (generation > 0)
);

CREATE TABLE root_key_versions (
	scope_id        TEXT    NOT NULL REFERENCES scopes (id),
	version         INTEGER NOT NULL CHECK (version > 0),
	id              TEXT    NOT NULL UNIQUE,
	blob            BLOB,
	wrapping_key_id TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	destroyed_at    INTEGER,
	PRIMARY KEY (scope_id, version)
);

CREATE TABLE data_key_versions (
	scope_id     TEXT    NOT NULL,
	purpose      TEXT    NOT NULL,
	version      INTEGER NOT NULL CHECK (version > 0),
	id           TEXT    NOT NULL UNIQUE,
	root_version INTEGER NOT NULL,
	wrapped      BLOB,
	created_at   INTEGER NOT NULL,
	destroyed_at INTEGER,
	PRIMARY KEY (scope_id, purpose, version),
	FOREIGN KEY (scope_id, root_version) REFERENCES root_key_versions (scope_id, version)
);

CREATE INDEX data_key_versions_root ON data_key_versions (scope_id, root_version);

CREATE TABLE tokens (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	scopes     TEXT    NOT NULL,
	hash       BLOB    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	revoked_at INTEGER
);

CREATE TABLE used_nonces (
	hash       BLOB    PRIMARY KEY,
	expires_at INTEGER NOT NULL
);

CREATE INDEX used_nonces_expires ON used_nonces (expires_at);
