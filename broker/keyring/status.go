package keyring

import (
	"context"
	"fmt"
)

// RootKeyStatus tells how the scopes' live KEK versions are spread over
// external root keys, so an operator knows when a retired root key
// (previous-root) no longer protects anything.
type RootKeyStatus struct {
	// CurrentKeyID is the id of the key serving the root purpose now.
	CurrentKeyID string
	// KeyVersions maps each external key id to the number of live KEK
	// versions it wraps, across all scopes.
	KeyVersions map[string]int
	// OnOtherKeys counts live KEK versions wrapped by any key but the
	// current one: what still depends on previous-root. Once it is 0,
	// previous-root can be removed.
	OnOtherKeys int
}

// RootKeyStatus counts live KEK versions by the external key wrapping
// them. It is meaningful only if root and previous-root report different
// key ids.
func (k *Keyring) RootKeyStatus(ctx context.Context) (RootKeyStatus, error) {
	if k.closed.Load() {
		return RootKeyStatus{}, fmt.Errorf("root key status: %w", ErrClosed)
	}
	current, err := k.root.RootKeyID(ctx)
	if err != nil {
		return RootKeyStatus{}, fmt.Errorf("root key status: %w: %w", ErrRootKMS, err)
	}
	counts, err := k.st.RootKeyCounts(ctx)
	if err != nil {
		return RootKeyStatus{}, fmt.Errorf("root key status: %w: %w", ErrStore, err)
	}
	st := RootKeyStatus{CurrentKeyID: current, KeyVersions: counts}
	for id, n := range counts {
		if id != current {
			st.OnOtherKeys += n
		}
	}
	return st, nil
}
