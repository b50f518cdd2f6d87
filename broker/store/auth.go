package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	scopes, err := json.Marshal(nonNil(t.Scopes))
	if err != nil {
		return fmt.Errorf("create token %q: encode scopes: %w", t.ID, err)
	}
	const q = `INSERT INTO tokens (id, name, role, scopes, hash, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	_, err = s.db.ExecContext(ctx, q, t.ID, t.Name, t.Role, string(scopes), t.Hash,
		nanos(t.CreateTime), nullNanos(t.ExpireTime), nullNanos(t.RevokeTime))
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.ID, s.classify(err))
	}
	return nil
}

const tokenColumns = `id, name, role, scopes, hash, created_at, expires_at, revoked_at`

func (s *sqlStore) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash)
	t, err := scanToken(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("read token by hash: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("read token by hash: %w", err)
	}
	return t, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func scanToken(scan func(...any) error) (Token, error) {
	var (
		t                Token
		scopes           string
		created          int64
		expires, revoked sql.NullInt64
	)
	if err := scan(&t.ID, &t.Name, &t.Role, &scopes, &t.Hash, &created, &expires,
		&revoked); err != nil {
		return Token{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return Token{}, fmt.Errorf("decode scopes of token %q: %w", t.ID, err)
	}
	t.CreateTime, t.ExpireTime, t.RevokeTime = fromNanos(created), fromNullNanos(expires), fromNullNanos(revoked)
	return t, nil
}

func (s *sqlStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	const q = `UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`
	res, err := s.db.ExecContext(ctx, q, id, nanos(at))
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, `SELECT 1 FROM tokens WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("revoke token %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", id, err)
	}
	return nil
}

func (s *sqlStore) UseNonce(ctx context.Context, nonce []byte, expires time.Time) error {
	sum := sha256.Sum256(nonce)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const prune = `DELETE FROM used_nonces WHERE expires_at < $1`
		if _, err := tx.ExecContext(ctx, prune, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		const q = `INSERT INTO used_nonces (hash, expires_at) VALUES ($1,
			$2) ON CONFLICT (hash) DO NOTHING`
		res, err := tx.ExecContext(ctx, q, sum[:], nanos(expires))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNonceUsed
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
