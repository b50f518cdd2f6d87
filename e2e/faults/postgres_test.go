package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// outageCycles is how often the PostgreSQL connection is cut under a
// loop of rotations and encryptions.
const outageCycles = 5

// failFastBound is the longest a call may take while the database is
// unreachable: the broker must answer with an error, not hang.
const failFastBound = 15 * time.Second

// postgresViaProxy returns a fresh schema's URL with its host replaced by
// a proxy to the server, and the proxy. It skips the test when
// BROKER_TEST_POSTGRES_URL is unset.
func postgresViaProxy(t *testing.T) (string, *tcpProxy) {
	t.Helper()
	backend := storetest.Postgres(t)
	u, err := url.Parse(backend.DSN)
	if err != nil {
		t.Fatalf("parse %s: %v", storetest.PostgresURLEnv, err)
	}
	upstream := u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "5432")
	}
	p := startProxy(t, upstream)
	u.Host = p.Addr()
	return u.String(), p
}

// TestPostgresOutage cuts the broker's connections to PostgreSQL, through
// a proxy, while rotations, rewraps and encryptions run, several times:
// calls fail quickly with a clean error, no rotation is left half done,
// the service resumes when the connection is back, and every envelope
// issued decrypts, also after a restart.
func TestPostgresOutage(t *testing.T) {
	dsn, proxy := postgresViaProxy(t)
	f := newFixture(t, brokerd.Config{Storage: brokerd.Postgres, PostgresURL: dsn})
	prepareData(t, f)
	before := mustReadKeys(t, f.c, "o_1")
	checkKeys(t, "before the outages", before)

	succeeded, attempted := 0, 0
	errs := map[string]error{}
	for cycle := range outageCycles {
		// Let the loop run, then cut it somewhere in the middle of a call.
		stop := make(chan struct{})
		done := make(chan struct{})
		var loopErrs []error
		var ok, tried int
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				var err error
				if i%3 == 2 {
					err = f.encrypt(ctx)
				} else {
					tried++
					_, err = f.c.RotateKeys(ctx, "o_1", i%2 == 0)
					if err == nil {
						ok++
					}
				}
				cancel()
				if took := time.Since(start); err != nil && took > failFastBound {
					t.Errorf("cycle %d: a call failed only after %s: %v", cycle, took, err)
				}
				if err != nil {
					loopErrs = append(loopErrs, err)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		proxy.Cut()
		time.Sleep(time.Second)
		proxy.Restore()
		waitStore(t, f)
		time.Sleep(300 * time.Millisecond) // some calls after the outage
		close(stop)
		<-done
		succeeded += ok
		attempted += tried

		if len(loopErrs) == 0 {
			t.Errorf("cycle %d: no call failed while PostgreSQL was cut off", cycle)
		}
		for i, err := range loopErrs {
			wantCleanError(t, "a call while PostgreSQL is cut off", err)
			errs[fmt.Sprintf("cycle %d call %d", cycle, i)] = err
		}
		k := mustReadKeys(t, f.c, "o_1")
		checkKeys(t, fmt.Sprintf("after outage %d", cycle+1), k)
	}
	wantUnavailable(t, errs)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.c.RotateKeys(ctx, "o_1", true); err != nil {
		t.Fatalf("RotateKeys after the last outage: %v", err)
	}
	succeeded++
	attempted++

	// A rotation whose commit reached the server but whose answer was
	// cut counts on the server, not in succeeded.
	after := mustReadKeys(t, f.c, "o_1")
	added := after.rotations() - before.rotations()
	if added < succeeded || added > attempted {
		t.Errorf("rotations: %d added to the store, %d reported done, %d tried; want between done and tried",
			added, succeeded, attempted)
	}
	byCode := map[codes.Code]int{}
	for _, err := range errs {
		byCode[status.Code(err)]++
	}
	t.Logf("%d outages: %d of %d rotations reported done, %d in the store, %d envelopes issued; errors by code: %v",
		outageCycles, succeeded, attempted, added, len(f.issued), byCode)
	decryptAll(t, f.c, f.issued)

	f.b.Stop()
	f.restart()
	checkKeys(t, "after a restart", mustReadKeys(t, f.c, "o_1"))
	decryptAll(t, f.c, f.issued)
}

// waitStore waits until the broker reads from its store again, failing
// the test after recoverWithin.
func waitStore(t *testing.T, f *fixture) {
	t.Helper()
	deadline := time.Now().Add(recoverWithin)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := f.c.KeyVersions(ctx, "o_1")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not serve again %s after PostgreSQL came back: %v", recoverWithin, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
