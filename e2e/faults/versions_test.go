package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/client"
)

// dataPurposes are a scope's data keys; each rotation adds one version of
// every one of them and of the KEK.
var dataPurposes = []string{"database", "oplog", "tokens", "sessions"}

// keyState is a scope's key versions as ListKeyVersions reports them.
type keyState struct {
	// versions maps "root" and each data purpose to its version numbers,
	// sorted.
	versions map[string][]uint32
	// wrappedBy maps each data key version ("database/3") to the KEK
	// version that wraps it.
	wrappedBy map[string]uint32
	// active maps each kind to the version marked active.
	active map[string]uint32
	// destroyed holds "root/1"-style names of destroyed versions.
	destroyed map[string]bool
}

// String is a short summary: the newest version of each kind.
func (k keyState) String() string {
	var parts []string
	for _, kind := range append([]string{"root"}, dataPurposes...) {
		v := k.versions[kind]
		if len(v) == 0 {
			parts = append(parts, kind+"=none")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%d", kind, v[len(v)-1]))
	}
	return strings.Join(parts, " ")
}

// rotations is how many rotations the state shows: its newest KEK
// version less one.
func (k keyState) rotations() int {
	v := k.versions["root"]
	if len(v) == 0 {
		return -1
	}
	return int(v[len(v)-1]) - 1
}

// readKeys lists a scope's key versions.
func readKeys(ctx context.Context, c *client.Client, scope string) (keyState, error) {
	list, err := c.KeyVersions(ctx, scope)
	if err != nil {
		return keyState{}, err
	}
	k := keyState{
		versions:  map[string][]uint32{},
		wrappedBy: map[string]uint32{},
		active:    map[string]uint32{},
		destroyed: map[string]bool{},
	}
	for _, v := range list {
		kind := v.GetKind()
		k.versions[kind] = append(k.versions[kind], v.GetVersion())
		if kind != "root" {
			k.wrappedBy[fmt.Sprintf("%s/%d", kind, v.GetVersion())] = v.GetRootKeyVersion()
		}
		if v.GetActive() {
			k.active[kind] = v.GetVersion()
		}
		if v.GetDestroyTime() != nil {
			k.destroyed[fmt.Sprintf("%s/%d", kind, v.GetVersion())] = true
		}
	}
	for kind := range k.versions {
		slices.Sort(k.versions[kind])
	}
	return k, nil
}

// mustReadKeys is readKeys that fails the test on error.
func mustReadKeys(t *testing.T, c *client.Client, scope string) keyState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := readKeys(ctx, c, scope)
	if err != nil {
		t.Fatalf("KeyVersions of %s: %v", scope, err)
	}
	return k
}

// problems lists every way k breaks the rotation invariant: the KEK and
// every data key have the same versions 1..n with none missing or
// repeated (a rotation is all or nothing), the newest of each is the
// active one, and every data key version is wrapped by a live KEK
// version.
func (k keyState) problems() []string {
	var probs []string
	root := k.versions["root"]
	n := len(root)
	for _, kind := range append([]string{"root"}, dataPurposes...) {
		v := k.versions[kind]
		if len(v) != n {
			probs = append(probs, fmt.Sprintf("%d %s versions but %d KEK versions", len(v), kind, n))
		}
		for i, ver := range v {
			if ver != uint32(i+1) {
				probs = append(probs, fmt.Sprintf("%s versions are %v, want 1..%d", kind, v, len(v)))
				break
			}
		}
		if len(v) > 0 && k.active[kind] != v[len(v)-1] {
			probs = append(probs, fmt.Sprintf("active %s version is %d, want the newest, %d", kind, k.active[kind], v[len(v)-1]))
		}
	}
	for dk, kek := range k.wrappedBy {
		if kek == 0 || int(kek) > n {
			probs = append(probs, fmt.Sprintf("%s is wrapped by KEK version %d, which does not exist", dk, kek))
		} else if k.destroyed[fmt.Sprintf("root/%d", kek)] && !k.destroyed[dk] {
			probs = append(probs, fmt.Sprintf("%s is wrapped by destroyed KEK version %d", dk, kek))
		}
	}
	slices.Sort(probs)
	return probs
}

// checkKeys fails the test if k breaks the rotation invariant.
func checkKeys(t *testing.T, when string, k keyState) {
	t.Helper()
	if probs := k.problems(); len(probs) > 0 {
		t.Errorf("key versions %s are inconsistent: %s", when, strings.Join(probs, "; "))
	}
}

// TestKeyStateProblems checks the invariant check itself on made-up key
// states, so that the fault tests that rely on it can fail.
func TestKeyStateProblems(t *testing.T) {
	// state builds a key state with KEK versions 1..n and, for each data
	// purpose, the versions given, each wrapped by the KEK of the same
	// number, the newest active.
	state := func(n uint32, data map[string][]uint32) keyState {
		k := keyState{versions: map[string][]uint32{}, wrappedBy: map[string]uint32{},
			active: map[string]uint32{}, destroyed: map[string]bool{}}
		for v := uint32(1); v <= n; v++ {
			k.versions["root"] = append(k.versions["root"], v)
		}
		k.active["root"] = n
		for _, p := range dataPurposes {
			vs, ok := data[p]
			if !ok {
				vs = k.versions["root"]
			}
			k.versions[p] = vs
			for _, v := range vs {
				k.wrappedBy[fmt.Sprintf("%s/%d", p, v)] = v
			}
			if len(vs) > 0 {
				k.active[p] = vs[len(vs)-1]
			}
		}
		return k
	}
	for _, tc := range []struct {
		name string
		k    keyState
		want string // a problem that must be reported; "" for none
	}{
		{"consistent", state(3, nil), ""},
		{"a data key missing a version", state(3, map[string][]uint32{"oplog": {1, 2}}), "2 oplog versions but 3 KEK versions"},
		{"a gap", state(3, map[string][]uint32{"tokens": {1, 3, 4}}), "tokens versions are [1 3 4], want 1..3"},
		{"older version active", func() keyState { k := state(2, nil); k.active["database"] = 1; return k }(),
			"active database version is 1, want the newest, 2"},
		{"wrapped by a missing KEK", func() keyState { k := state(2, nil); k.wrappedBy["sessions/2"] = 3; return k }(),
			"sessions/2 is wrapped by KEK version 3, which does not exist"},
		{"wrapped by a destroyed KEK", func() keyState { k := state(2, nil); k.destroyed["root/1"] = true; return k }(),
			"database/1 is wrapped by destroyed KEK version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs := tc.k.problems()
			if tc.want == "" {
				if len(probs) > 0 {
					t.Errorf("problems: got %q, want none", probs)
				}
				return
			}
			if !slices.Contains(probs, tc.want) {
				t.Errorf("problems: got %q, want it to hold %q", probs, tc.want)
			}
		})
	}
}
