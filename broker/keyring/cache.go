package keyring

import (
	"bytes"
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/store"
)

// dataRef names one data key version of a scope.
type dataRef struct {
	code    byte
	version uint32
}

// entryIDs numbers cache entries so that singleflight keys name one entry.
var entryIDs atomic.Uint64

// scopeEntry is one scope in the cache: the scope's key rows as read at
// one generation, and the key versions unwrapped so far.
//
// The rows are immutable once the entry is built. The unwrapped keys fill
// in lazily, under mu, so a cold scope costs one root call for the KEK
// version it needs and none for the others. A retired entry has left the
// cache: its keys are zeroed or handed to its successor, and callers that
// still hold it must look the scope up again.
type scopeEntry struct {
	uid        uint64
	id         string
	gen        uint64
	roots      map[uint32]store.RootKeyVersion
	data       map[dataRef]store.DataKeyVersion
	newestRoot uint32
	// newest is the newest data key version per purpose code.
	newest [numPurposes + 1]uint32
	// checked is when the entry's generation was last confirmed against
	// the store, in unix nanoseconds.
	checked atomic.Int64

	mu      sync.Mutex
	retired bool
	keks    map[uint32]*secretKey
	deks    map[dataRef]*secretKey
}

func newEntry(keys store.ScopeKeys, now time.Time) *scopeEntry {
	e := &scopeEntry{
		uid:   entryIDs.Add(1),
		id:    keys.Scope.ID,
		gen:   keys.Scope.Generation,
		roots: make(map[uint32]store.RootKeyVersion, len(keys.Root)),
		data:  make(map[dataRef]store.DataKeyVersion, len(keys.Data)),
		keks:  map[uint32]*secretKey{},
		deks:  map[dataRef]*secretKey{},
	}
	for _, r := range keys.Root {
		e.roots[r.Version] = r
		e.newestRoot = max(e.newestRoot, r.Version)
	}
	for _, d := range keys.Data {
		c := DataPurpose(d.Purpose).code()
		if c == 0 {
			// A purpose this binary does not know: it cannot be used
			// here, but it stays in the store untouched.
			continue
		}
		e.data[dataRef{c, d.Version}] = d
		e.newest[c] = max(e.newest[c], d.Version)
	}
	e.checked.Store(now.UnixNano())
	return e
}

// replacedFor returns how long before now the data key version ref was
// replaced as its purpose's active version: the age of the oldest version
// newer than it. It is negative if that version's creation time is after
// now (clocks of brokers sharing a store disagree), and zero if ref is the
// newest.
func (e *scopeEntry) replacedFor(ref dataRef, now time.Time) time.Duration {
	var next store.DataKeyVersion
	for r, d := range e.data {
		if r.code == ref.code && r.version > ref.version && (next.Version == 0 || r.version < next.Version) {
			next = d
		}
	}
	if next.Version == 0 {
		return 0
	}
	return now.Sub(next.CreateTime)
}

// kek returns the unwrapped KEK version v, or nil if the entry does not
// have it yet; retired reports that the entry has left the cache.
func (e *scopeEntry) kek(v uint32) (k *secretKey, retired bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.retired {
		return nil, true
	}
	return e.keks[v], false
}

// dek is kek for data keys.
func (e *scopeEntry) dek(ref dataRef) (k *secretKey, retired bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.retired {
		return nil, true
	}
	return e.deks[ref], false
}

// addKEK stores an unwrapped KEK and returns the one the entry keeps, or
// false if the entry is retired, in which case k has been zeroed.
func (e *scopeEntry) addKEK(v uint32, k *secretKey) (*secretKey, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch have := e.keks[v]; {
	case e.retired:
		k.zero()
		return nil, false
	case have != nil && have != k:
		k.zero()
		return have, true
	}
	e.keks[v] = k
	return k, true
}

// addDEK is addKEK for data keys.
func (e *scopeEntry) addDEK(ref dataRef, k *secretKey) (*secretKey, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch have := e.deks[ref]; {
	case e.retired:
		k.zero()
		return nil, false
	case have != nil && have != k:
		k.zero()
		return have, true
	}
	e.deks[ref] = k
	return k, true
}

// retire takes the entry out of use. Keys that next still has as live
// versions with the same stable id move to next, which is not yet
// published; the rest are zeroed. next may be nil.
func (e *scopeEntry) retire(next *scopeEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.retired {
		return
	}
	e.retired = true
	for v, k := range e.keks {
		if r, ok := next.rootRow(v); ok && r.ID == k.id && r.DestroyTime.IsZero() && next.keks[v] == nil {
			next.keks[v] = k
		} else {
			k.zero()
		}
	}
	for ref, k := range e.deks {
		if d, ok := next.dataRow(ref); ok && d.ID == k.id && d.DestroyTime.IsZero() && next.deks[ref] == nil {
			next.deks[ref] = k
		} else {
			k.zero()
		}
	}
	clear(e.keks)
	clear(e.deks)
}

// copyKeysInto gives w, an unpublished working entry, its own copies of
// the keys e has for versions that are live in w under the same stable
// id. Copies, not shared pointers, because e stays in use and w's keys
// are zeroed independently.
func (e *scopeEntry) copyKeysInto(w *scopeEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.retired {
		return
	}
	for v, k := range e.keks {
		if r, ok := w.roots[v]; ok && r.ID == k.id && r.DestroyTime.IsZero() {
			if c, err := newSecretKey(k.id, bytes.Clone(k.raw)); err == nil {
				w.keks[v] = c
			}
		}
	}
	for ref, k := range e.deks {
		if d, ok := w.data[ref]; ok && d.ID == k.id && d.DestroyTime.IsZero() {
			if c, err := newSecretKey(k.id, bytes.Clone(k.raw)); err == nil {
				w.deks[ref] = c
			}
		}
	}
}

// copyRaw returns a copy of the raw bytes of data key version ref, which
// the caller must zero, or false if the entry is retired or lacks it.
func (e *scopeEntry) copyRaw(ref dataRef) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.deks[ref]
	if e.retired || k == nil {
		return nil, false
	}
	return bytes.Clone(k.raw), true
}

func (e *scopeEntry) rootRow(v uint32) (store.RootKeyVersion, bool) {
	if e == nil {
		return store.RootKeyVersion{}, false
	}
	r, ok := e.roots[v]
	return r, ok
}

func (e *scopeEntry) dataRow(ref dataRef) (store.DataKeyVersion, bool) {
	if e == nil {
		return store.DataKeyVersion{}, false
	}
	d, ok := e.data[ref]
	return d, ok
}

// cache is a bounded LRU of scope entries. Lock order: cache.mu, then an
// entry's mu.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *scopeEntry, most recently used first
	items map[string]*list.Element
}

func newCache(size int) *cache {
	return &cache{max: size, order: list.New(), items: map[string]*list.Element{}}
}

// get returns the scope's entry and marks it recently used.
func (c *cache) get(id string) *scopeEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[id]
	if el == nil {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*scopeEntry)
}

// put publishes e unless the cache already holds the scope at the same or
// a newer generation, and returns the entry now in the cache. A replaced
// entry hands its keys to e; a discarded e is retired. Entries beyond the
// size bound are evicted and zeroed, least recently used first.
func (c *cache) put(e *scopeEntry) *scopeEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[e.id]; el != nil {
		old := el.Value.(*scopeEntry)
		if old.gen >= e.gen {
			e.retire(nil)
			c.order.MoveToFront(el)
			return old
		}
		old.retire(e)
		el.Value = e
		c.order.MoveToFront(el)
		return e
	}
	c.items[e.id] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		old := c.order.Remove(last).(*scopeEntry)
		delete(c.items, old.id)
		old.retire(nil)
	}
	return e
}

// remove drops and zeroes the scope's entry if it is e, or any entry for
// the scope if e is nil.
func (c *cache) remove(id string, e *scopeEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[id]
	if el == nil || (e != nil && el.Value.(*scopeEntry) != e) {
		return
	}
	c.order.Remove(el)
	delete(c.items, id)
	el.Value.(*scopeEntry).retire(nil)
}

// purge drops and zeroes every entry.
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.order.Front(); el != nil; el = el.Next() {
		el.Value.(*scopeEntry).retire(nil)
	}
	c.order.Init()
	clear(c.items)
}

// len returns the number of cached scopes.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
