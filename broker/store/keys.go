package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// sqlStore implements Store for both backends over database/sql.
type sqlStore struct {
	db *sql.DB
	d  dialect
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Kind() string { return s.d.kind }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s store: %w", s.d.kind, err)
	}
	return nil
}

func (s *sqlStore) Close() error { return s.db.Close() }

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *sqlStore) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.runTx(ctx, nil, fn)
}

// inReadTx runs fn in a read-only transaction that sees one snapshot.
func (s *sqlStore) inReadTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.runTx(ctx, &s.d.readTx, fn)
}

func (s *sqlStore) runTx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// classify maps a unique violation to ErrConflict and leaves every other
// error as it is.
func (s *sqlStore) classify(err error) error {
	if s.d.isUnique(err) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func (s *sqlStore) CreateScope(ctx context.Context, keys ScopeKeys) error {
	sc := keys.Scope
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const q = `INSERT INTO scopes (id, name, created_at, generation) VALUES ($1, $2, $3, 1)`
		if _, err := tx.ExecContext(ctx, q, sc.ID, sc.Name, nanos(sc.CreateTime)); err != nil {
			return s.classify(err)
		}
		for _, r := range keys.Root {
			if err := insertRoot(ctx, tx, sc.ID, r); err != nil {
				return s.classify(err)
			}
		}
		for _, d := range keys.Data {
			if err := insertData(ctx, tx, sc.ID, d); err != nil {
				return s.classify(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create scope %q: %w", sc.ID, err)
	}
	return nil
}

func insertRoot(ctx context.Context, tx *sql.Tx, scopeID string, r RootKeyVersion) error {
	const q = `INSERT INTO root_key_versions
		(scope_id, version, id, blob, wrapping_key_id, created_at, destroyed_at)
		VALUES ($1, $2, $3, $4, $5, $6, NULL)`
	_, err := tx.ExecContext(ctx, q, scopeID, int64(r.Version), r.ID, r.Blob,
		r.WrappingKeyID, nanos(r.CreateTime))
	return err
}

func insertData(ctx context.Context, tx *sql.Tx, scopeID string, d DataKeyVersion) error {
	const q = `INSERT INTO data_key_versions
		(scope_id, purpose, version, id, root_version, wrapped, created_at, destroyed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`
	_, err := tx.ExecContext(ctx, q, scopeID, d.Purpose, int64(d.Version), d.ID,
		int64(d.RootVersion), d.Wrapped, nanos(d.CreateTime))
	return err
}

func (s *sqlStore) Scope(ctx context.Context, id string) (Scope, error) {
	var sc Scope
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		sc, err = readScope(ctx, tx, id)
		if err != nil {
			return err
		}
		return fillNewest(ctx, tx, &sc)
	})
	if err != nil {
		return Scope{}, fmt.Errorf("read scope %q: %w", id, err)
	}
	return sc, nil
}

func readScope(ctx context.Context, tx *sql.Tx, id string) (Scope, error) {
	const q = `SELECT id, name, created_at, generation FROM scopes WHERE id = $1`
	var (
		sc      Scope
		created int64
		gen     int64
	)
	err := tx.QueryRowContext(ctx, q, id).Scan(&sc.ID, &sc.Name, &created, &gen)
	if errors.Is(err, sql.ErrNoRows) {
		return Scope{}, ErrNotFound
	}
	if err != nil {
		return Scope{}, err
	}
	sc.CreateTime = fromNanos(created)
	sc.Generation = uint64(gen)
	return sc, nil
}

// fillNewest sets sc's newest root and data versions.
func fillNewest(ctx context.Context, tx *sql.Tx, sc *Scope) error {
	const qr = `SELECT COALESCE(MAX(version), 0) FROM root_key_versions WHERE scope_id = $1`
	var root int64
	if err := tx.QueryRowContext(ctx, qr, sc.ID).Scan(&root); err != nil {
		return err
	}
	sc.RootVersion = uint32(root)

	const qd = `SELECT purpose, MAX(version) FROM data_key_versions WHERE scope_id = $1 GROUP BY purpose`
	rows, err := tx.QueryContext(ctx, qd, sc.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	sc.DataVersions = map[string]uint32{}
	for rows.Next() {
		var (
			p string
			v int64
		)
		if err := rows.Scan(&p, &v); err != nil {
			return err
		}
		sc.DataVersions[p] = uint32(v)
	}
	return rows.Err()
}

func (s *sqlStore) ListScopes(ctx context.Context) ([]Scope, error) {
	var out []Scope
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		byID := map[string]*Scope{}
		rows, err := tx.QueryContext(ctx, `SELECT id, name, created_at,
			generation FROM scopes ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				sc           Scope
				created, gen int64
			)
			if err := rows.Scan(&sc.ID, &sc.Name, &created, &gen); err != nil {
				return err
			}
			sc.CreateTime, sc.Generation = fromNanos(created), uint64(gen)
			sc.DataVersions = map[string]uint32{}
			out = append(out, sc)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			byID[out[i].ID] = &out[i]
		}

		const qr = `SELECT scope_id, MAX(version) FROM root_key_versions GROUP BY scope_id`
		if err := scanNewest(ctx, tx, qr, func(id, _ string, v uint32) {
			if sc := byID[id]; sc != nil {
				sc.RootVersion = v
			}
		}, false); err != nil {
			return err
		}
		const qd = `SELECT scope_id, purpose, MAX(version) FROM data_key_versions GROUP BY scope_id, purpose`
		return scanNewest(ctx, tx, qd, func(id, p string, v uint32) {
			if sc := byID[id]; sc != nil {
				sc.DataVersions[p] = v
			}
		}, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	return out, nil
}

// scanNewest runs a grouped MAX(version) query whose rows are (scope id,
// [purpose,] version) and hands each row to fn.
func scanNewest(ctx context.Context, tx *sql.Tx, q string, fn func(id,
	purpose string, v uint32), withPurpose bool) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, p string
			v     int64
			err   error
		)
		if withPurpose {
			err = rows.Scan(&id, &p, &v)
		} else {
			err = rows.Scan(&id, &v)
		}
		if err != nil {
			return err
		}
		fn(id, p, uint32(v))
	}
	return rows.Err()
}

func (s *sqlStore) ScopeKeys(ctx context.Context, id string) (ScopeKeys, error) {
	var keys ScopeKeys
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		if keys.Scope, err = readScope(ctx, tx, id); err != nil {
			return err
		}
		if keys.Root, err = readRoots(ctx, tx, id); err != nil {
			return err
		}
		keys.Data, err = readData(ctx, tx, id)
		return err
	})
	if err != nil {
		return ScopeKeys{}, fmt.Errorf("read keys of scope %q: %w", id, err)
	}
	return keys, nil
}

func readRoots(ctx context.Context, tx *sql.Tx, scopeID string) ([]RootKeyVersion, error) {
	const q = `SELECT version, id, blob, wrapping_key_id, created_at, destroyed_at
		FROM root_key_versions WHERE scope_id = $1 ORDER BY version`
	rows, err := tx.QueryContext(ctx, q, scopeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RootKeyVersion
	for rows.Next() {
		var (
			r         RootKeyVersion
			v, create int64
			destroy   sql.NullInt64
		)
		if err := rows.Scan(&v, &r.ID, &r.Blob, &r.WrappingKeyID, &create, &destroy); err != nil {
			return nil, err
		}
		r.Version, r.CreateTime, r.DestroyTime = uint32(v), fromNanos(create), fromNullNanos(destroy)
		out = append(out, r)
	}
	return out, rows.Err()
}

func readData(ctx context.Context, tx *sql.Tx, scopeID string) ([]DataKeyVersion, error) {
	const q = `SELECT purpose, version, id, root_version, wrapped, created_at, destroyed_at
		FROM data_key_versions WHERE scope_id = $1 ORDER BY purpose, version`
	rows, err := tx.QueryContext(ctx, q, scopeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DataKeyVersion
	for rows.Next() {
		var (
			d             DataKeyVersion
			v, rv, create int64
			destroy       sql.NullInt64
		)
		if err := rows.Scan(&d.Purpose, &v, &d.ID, &rv, &d.Wrapped, &create, &destroy); err != nil {
			return nil, err
		}
		d.Version, d.RootVersion = uint32(v), uint32(rv)
		d.CreateTime, d.DestroyTime = fromNanos(create), fromNullNanos(destroy)
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *sqlStore) ScopeGeneration(ctx context.Context, id string) (uint64, error) {
	var gen int64
	err := s.db.QueryRowContext(ctx, `SELECT generation FROM scopes WHERE id = $1`, id).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read generation of scope %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("read generation of scope %q: %w", id, err)
	}
	return uint64(gen), nil
}

func (s *sqlStore) UpdateKeys(ctx context.Context, scopeID string,
	generation uint64, ch KeyChanges) (uint64, error) {
	var next uint64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The compare-and-swap comes first: on PostgreSQL it also locks
		// the scope row, so a concurrent UpdateKeys waits here and then
		// finds the generation moved.
		const cas = `UPDATE scopes SET generation = generation + 1 WHERE id = $1 AND generation = $2`
		res, err := tx.ExecContext(ctx, cas, scopeID, int64(generation))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if _, err := readScope(ctx, tx, scopeID); err != nil {
				return err
			}
			return fmt.Errorf("generation %d moved: %w", generation, ErrConflict)
		}
		next = generation + 1

		for _, r := range ch.AddRoot {
			if err := insertRoot(ctx, tx, scopeID, r); err != nil {
				return s.classify(err)
			}
		}
		for _, d := range ch.AddData {
			if err := insertData(ctx, tx, scopeID, d); err != nil {
				return s.classify(err)
			}
		}
		for _, r := range ch.RewrapRoot {
			const q = `UPDATE root_key_versions SET blob = $3, wrapping_key_id = $4
				WHERE scope_id = $1 AND version = $2 AND destroyed_at IS NULL`
			if err := execOne(ctx, tx, q, scopeID, int64(r.Version), r.Blob,
				r.WrappingKeyID); err != nil {
				return fmt.Errorf("rewrap root key version %d: %w", r.Version, err)
			}
		}
		for _, d := range ch.RewrapData {
			const q = `UPDATE data_key_versions SET wrapped = $4, root_version = $5
				WHERE scope_id = $1 AND purpose = $2 AND version = $3 AND destroyed_at IS NULL`
			if err := execOne(ctx, tx, q, scopeID, d.Purpose, int64(d.Version),
				d.Wrapped, int64(d.RootVersion)); err != nil {
				return fmt.Errorf("rewrap %s data key version %d: %w", d.Purpose, d.Version, err)
			}
		}
		for _, id := range ch.Destroy {
			if err := destroyVersion(ctx, tx, scopeID, id, ch.DestroyTime); err != nil {
				return fmt.Errorf("destroy key version %q: %w", id, err)
			}
		}
		if len(ch.Destroy) > 0 || len(ch.RewrapData) > 0 {
			return checkNoOrphans(ctx, tx, scopeID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("update keys of scope %q: %w", scopeID, err)
	}
	return next, nil
}

func (s *sqlStore) RootKeyCounts(ctx context.Context) (map[string]int, error) {
	const q = `SELECT wrapping_key_id, COUNT(*) FROM root_key_versions
		WHERE destroyed_at IS NULL GROUP BY wrapping_key_id`
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("count root key versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count root key versions: %w", err)
		}
		out[id] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count root key versions: %w", err)
	}
	return out, nil
}

// execOne runs an update that must change exactly one row; changing none
// means the row is missing or destroyed, which is a conflict.
func execOne(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("version missing or destroyed: %w", ErrConflict)
	}
	return nil
}

// destroyVersion erases one live version, root or data, by stable id.
func destroyVersion(ctx context.Context, tx *sql.Tx, scopeID, id string, at time.Time) error {
	const qr = `UPDATE root_key_versions SET blob = NULL, destroyed_at = $3
		WHERE scope_id = $1 AND id = $2 AND destroyed_at IS NULL`
	err := execOne(ctx, tx, qr, scopeID, id, nanos(at))
	if !errors.Is(err, ErrConflict) {
		return err
	}
	const qd = `UPDATE data_key_versions SET wrapped = NULL, destroyed_at = $3
		WHERE scope_id = $1 AND id = $2 AND destroyed_at IS NULL`
	return execOne(ctx, tx, qd, scopeID, id, nanos(at))
}

// checkNoOrphans refuses a change that would leave a live data key version
// wrapped by a destroyed root key version: that data key, and every
// envelope it made, would be lost.
func checkNoOrphans(ctx context.Context, tx *sql.Tx, scopeID string) error {
	const q = `SELECT COUNT(*) FROM data_key_versions d
		JOIN root_key_versions r ON r.scope_id = d.scope_id AND r.version = d.root_version
		WHERE d.scope_id = $1 AND d.destroyed_at IS NULL AND r.destroyed_at IS NOT NULL`
	var n int64
	if err := tx.QueryRowContext(ctx, q, scopeID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d live data key versions would lose their root key version: %w",
			n, ErrConflict)
	}
	return nil
}

// Times are stored as unix nanoseconds; the zero time is stored as 0 in
// NOT NULL columns and as NULL in nullable ones.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}
