package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
	"github.com/kmsbroker/kmsbroker/e2e/brokerd"
)

// outageCycles is how often PostgreSQL is taken away under a loop of
// rotations and encryptions.
const outageCycles = 5

// failFastBound is the longest a call may take while the database is
// unreachable: the broker must answer with an error, not hang.
const failFastBound = 15 * time.Second

// terminations is how often the broker's sessions are terminated in one
// cycle, terminationGap apart: several times, so that some termination
// hits a session in the middle of a query rather than an idle one, which
// the connection pool replaces unseen.
const (
	terminations   = 5
	terminationGap = 40 * time.Millisecond
)

// terminateQuery ends the broker's server sessions: every session of the
// current database but the test's own, narrowed to the broker's
// application_name so that other tests sharing the server are left alone.
const terminateQuery = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`

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

	res := underFaults(t, f, func(int) {
		proxy.Cut()
		time.Sleep(time.Second)
		proxy.Restore()
	})
	// Every cut lasts a second, longer than any call: one fails each time.
	for _, cycle := range res.quiet {
		t.Errorf("cycle %d: no call failed while PostgreSQL was cut off", cycle)
	}
	storeResumes(t, f, before, res)
}

// TestPostgresSessionsTerminated ends the broker's sessions on the server
// with pg_terminate_backend, as an administrator or a failover does,
// while rotations, rewraps and encryptions run, several times: calls fail
// quickly with the documented error, the broker log says the server
// ended the session, no rotation is left half done, the service resumes
// at once, and every envelope issued decrypts, also after a restart.
func TestPostgresSessionsTerminated(t *testing.T) {
	backend := storetest.Postgres(t)
	appName := "kmsbroker-e2e-" + randomHex(t, 6)
	u, err := url.Parse(backend.DSN)
	if err != nil {
		t.Fatalf("parse %s: %v", storetest.PostgresURLEnv, err)
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, backend.DSN)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })

	f := newFixture(t, brokerd.Config{Storage: brokerd.Postgres, PostgresURL: u.String()})
	prepareData(t, f)
	before := mustReadKeys(t, f.c, "o_1")
	checkKeys(t, "before the terminations", before)

	terminated := 0
	res := underFaults(t, f, func(cycle int) {
		n := 0
		for range terminations {
			n += terminate(t, conn, appName)
			time.Sleep(terminationGap)
		}
		if n == 0 {
			t.Errorf("cycle %d: the broker had no session to terminate", cycle)
		}
		terminated += n
	})
	t.Logf("%d broker sessions terminated; no call failed in cycles %v", terminated, res.quiet)
	// A session terminated while idle is replaced unseen; one terminated
	// mid-query fails its call. Over all cycles some call must fail, or
	// the test did not hit the broker at all.
	if len(res.errs) == 0 {
		t.Errorf("no call failed in %d cycles of terminated sessions", outageCycles)
	}
	if log := f.b.Logs(); !strings.Contains(log, "SQLSTATE 57P01") {
		t.Errorf("broker log does not say the server ended its sessions: no %q in it", "SQLSTATE 57P01")
	}
	storeResumes(t, f, before, res)
}

// terminate ends every session of the broker named appName and returns
// how many there were.
func terminate(t *testing.T, conn *pgx.Conn, appName string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, terminateQuery, appName)
	if err != nil {
		t.Fatalf("pg_terminate_backend: %v", err)
	}
	n := 0
	for rows.Next() {
		var ok bool
		if err := rows.Scan(&ok); err != nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		if ok {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pg_terminate_backend: %v", err)
	}
	return n
}

// faultResult is what a loop of calls under store faults saw.
type faultResult struct {
	// succeeded and attempted count rotations reported done and tried.
	succeeded, attempted int
	// errs are the errors of the calls that failed, by cycle and call.
	errs map[string]error
	// quiet are the cycles in which no call failed.
	quiet []int
}

// underFaults runs rotations, with and without rewrap, and encryptions
// in o_1 in a loop, and calls fault outageCycles times somewhere in the
// middle of a call. After each fault it waits until the broker reads its
// store again, and checks every failed call's error and o_1's key
// versions.
func underFaults(t *testing.T, f *fixture, fault func(cycle int)) faultResult {
	t.Helper()
	res := faultResult{errs: map[string]error{}}
	for cycle := range outageCycles {
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
		// Let the loop run, then strike somewhere in the middle of a call.
		time.Sleep(time.Duration(50+mathrand.IntN(250)) * time.Millisecond)
		fault(cycle)
		waitStore(t, f)
		time.Sleep(300 * time.Millisecond) // some calls after the fault
		close(stop)
		<-done
		res.succeeded += ok
		res.attempted += tried

		if len(loopErrs) == 0 {
			res.quiet = append(res.quiet, cycle)
		}
		for i, err := range loopErrs {
			wantCleanError(t, fmt.Sprintf("cycle %d call %d", cycle, i), err)
			res.errs[fmt.Sprintf("cycle %d call %d", cycle, i)] = err
		}
		checkKeys(t, fmt.Sprintf("after fault %d", cycle+1), mustReadKeys(t, f.c, "o_1"))
	}
	return res
}

// storeResumes checks what must hold after the faults of res: every
// error was UNAVAILABLE, a rotation succeeds, the store holds no more
// and no fewer rotations than were reported done and tried, and every
// envelope decrypts, also after a restart.
func storeResumes(t *testing.T, f *fixture, before keyState, res faultResult) {
	t.Helper()
	wantUnavailable(t, res.errs)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.c.RotateKeys(ctx, "o_1", true); err != nil {
		t.Fatalf("RotateKeys after the last fault: %v", err)
	}
	res.succeeded++
	res.attempted++

	// A rotation whose commit reached the server but whose answer was
	// lost counts on the server, not in succeeded.
	after := mustReadKeys(t, f.c, "o_1")
	added := after.rotations() - before.rotations()
	if added < res.succeeded || added > res.attempted {
		t.Errorf("rotations: %d added to the store, %d reported done, %d tried; want between done and tried",
			added, res.succeeded, res.attempted)
	}
	byCode := map[codes.Code]int{}
	for _, err := range res.errs {
		byCode[status.Code(err)]++
	}
	t.Logf("%d faults: %d of %d rotations reported done, %d in the store, %d envelopes issued; errors by code: %v",
		outageCycles, res.succeeded, res.attempted, added, len(f.issued), byCode)
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

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
