-- Schema 1: scopes, their wrapped key versions, client tokens and used
-- nonces. Times are unix nanoseconds (UTC); a NULL time means "not yet".
-- The SQLite file of the same number defines the same tables.

CREATE TABLE scopes (
	id         TEXT   PRIMARY KEY,
	name       TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	generation BIGINT NOT NULL CHECK (generation > 0)
);

CREATE TABLE root_key_versions (
	scope_id        TEXT   NOT NULL REFERENCES scopes (id),
	version         BIGINT NOT NULL CHECK (version > 0),
	id              TEXT   NOT NULL UNIQUE,
	blob            BYTEA,
	wrapping_key_id TEXT   NOT NULL,
	created_at      BIGINT NOT NULL,
	destroyed_at    BIGINT,
	PRIMARY KEY (scope_id, version)
);

CREATE TABLE data_key_versions (
	scope_id     TEXT   NOT NULL,
	purpose      TEXT   NOT NULL,
	version      BIGINT NOT NULL CHECK (version > 0),
	id           TEXT   NOT NULL UNIQUE,
	root_version BIGINT NOT NULL,
	wrapped      BYTEA,
	created_at   BIGINT NOT NULL,
	destroyed_at BIGINT,
	PRIMARY KEY (scope_id, purpose, version),
	FOREIGN KEY (scope_id, root_version) REFERENCES root_key_versions (scope_id, version)
);

CREATE INDEX data_key_versions_root ON data_key_versions (scope_id, root_version);

CREATE TABLE tokens (
	id         TEXT   PRIMARY KEY,
	name       TEXT   NOT NULL,
	role       TEXT   NOT NULL,
	scopes     TEXT   NOT NULL,
	hash       BYTEA  NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	revoked_at BIGINT
);

CREATE TABLE used_nonces (
	hash       BYTEA  PRIMARY KEY,
	expires_at BIGINT NOT NULL
);

CREATE INDEX used_nonces_expires ON used_nonces (expires_at);
