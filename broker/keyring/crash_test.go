package keyring

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kmsbroker/kmsbroker/broker/store"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// Environment of the crash child: the test binary re-run as a keyring
// process that the parent kills.
const (
	crashChildEnv = "KEYRING_CRASH_CHILD"
	crashKindEnv  = "KEYRING_CRASH_KIND"
	crashDSNEnv   = "KEYRING_CRASH_DSN"
	crashKeyEnv   = "KEYRING_CRASH_ROOT_KEY"
	crashLogEnv   = "KEYRING_CRASH_LOG"
)

// TestCrashDuringLifecycle SIGKILLs a process at random points while it
// rotates, rewraps and encrypts in a loop, restarts it several times, and
// then decrypts every envelope the process ever handed out (recorded in a
// file, fsynced, after Encrypt returned).
func TestCrashDuringLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		rootKey := make([]byte, 32)
		for i := range rootKey {
			rootKey[i] = byte(rand.IntN(256))
		}
		root := &testRoot{root: aeadWrapperWithKey(t, rootKey, "root-crash"), rootID: "root-crash"}
		f := newFixture(t, fixtureOpts{backend: b, root: root})
		f.mustCreate(t, "o_crash")
		logPath := filepath.Join(t.TempDir(), "envelopes.log")

		const rounds = 6
		for round := range rounds {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(),
				crashChildEnv+"=1",
				crashKindEnv+"="+b.Kind,
				crashDSNEnv+"="+b.DSN,
				crashKeyEnv+"="+hex.EncodeToString(rootKey),
				crashLogEnv+"="+logPath,
			)
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatalf("start child: %v", err)
			}
			time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("round %d: kill child: %v", round, err)
			}
			err := cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("round %d: child ended by itself (%v) instead of being killed:\n%s", round, err, out.String())
			}
		}

		all := readCrashLog(t, logPath)
		if len(all) == 0 {
			t.Fatal("the child recorded no envelopes")
		}
		restarted := newFixture(t, fixtureOpts{backend: b, root: root})
		restarted.mustOpenAll(t, all)

		kvs := restarted.keyVersions(t, "o_crash")
		roots := 0
		for _, kv := range kvs {
			if kv.Kind == RootKey {
				roots++
				if kv.Version != uint32(roots) {
					t.Fatalf("root key versions not contiguous after crashes: %v", kvs)
				}
			}
		}
		t.Logf("%d envelopes over %d root key versions survived %d kills", len(all), roots, rounds)
	})
}

// TestCrashChild is the process TestCrashDuringLifecycle kills. It does
// nothing unless run as that child.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("runs only as the child of TestCrashDuringLifecycle")
	}
	ctx := context.Background()
	key, err := hex.DecodeString(os.Getenv(crashKeyEnv))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, os.Getenv(crashKindEnv), os.Getenv(crashDSNEnv))
	if err != nil {
		t.Fatal(err)
	}
	root := &testRoot{root: aeadWrapperWithKey(t, key, "root-crash"), rootID: "root-crash"}
	kr := New(st, root, Options{}, hclog.NewNullLogger())

	log, err := os.OpenFile(os.Getenv(crashLogEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		switch i % 5 {
		case 0, 2, 4:
			p := DataPurposes()[i%numPurposes]
			pt := fmt.Sprintf("pt-%d-%d", os.Getpid(), i)
			aad := []byte("aad/o_crash/" + string(p))
			env, v, err := kr.Encrypt(ctx, "o_crash", p, []byte(pt), aad)
			if err != nil {
				t.Fatal(err)
			}
			line := fmt.Sprintf("%s %d %s %s\n", p, v, base64.StdEncoding.EncodeToString(env), base64.StdEncoding.EncodeToString([]byte(pt)))
			if _, err := log.WriteString(line); err != nil {
				t.Fatal(err)
			}
			if err := log.Sync(); err != nil {
				t.Fatal(err)
			}
		case 1:
			if _, err := kr.RotateKeys(ctx, "o_crash", i%3 == 0); err != nil {
				t.Fatal(err)
			}
		case 3:
			if _, err := kr.RewrapKeys(ctx, "o_crash"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func readCrashLog(t *testing.T, path string) []sealed {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	// The last element is empty, or a line a kill cut short: only lines
	// that end in a newline were handed out whole.
	lines = lines[:len(lines)-1]
	out := make([]sealed, 0, len(lines))
	for i, line := range lines {
		fields := strings.Fields(line)
		if len(fields) != 4 {
			t.Fatalf("crash log line %d malformed: %q", i+1, line)
		}
		var v uint32
		_, err := fmt.Sscan(fields[1], &v)
		env, err1 := base64.StdEncoding.DecodeString(fields[2])
		pt, err2 := base64.StdEncoding.DecodeString(fields[3])
		if err != nil || err1 != nil || err2 != nil {
			t.Fatalf("crash log line %d malformed: %q", i+1, line)
		}
		p := DataPurpose(fields[0])
		out = append(out, sealed{scope: "o_crash", p: p, env: env, pt: pt, version: v, aad: []byte("aad/o_crash/" + string(p))})
	}
	return out
}
