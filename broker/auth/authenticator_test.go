package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/audit"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/store/storetest"
)

// TestAuthenticatorAuditsOneTimeTokens runs one-time tokens through the
// Authenticator, as the API does, and checks the audit line each leaves:
// who, the result and why, and never the token itself.
func TestAuthenticatorAuditsOneTimeTokens(t *testing.T) {
	ctx := context.Background()
	kms := purpose.NewRouter(map[purpose.Purpose]purpose.Wrapper{
		purpose.Recovery: newAEAD(t), purpose.WorkerAuth: newAEAD(t)}, nil)
	st := storetest.Open(t, storetest.SQLite(t))
	var logged bytes.Buffer
	a := &Authenticator{
		Tokens:  NewTokens(st),
		OneTime: &OneTimeVerifier{KMS: kms, Nonces: st},
		Audit:   audit.New(&logged),
	}
	mint := func(kind Kind, name string, at time.Time) string {
		t.Helper()
		tok, err := MintOneTime(ctx, kms, kind, name, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	used := mint(KindRecovery, "", time.Now())

	tests := []struct {
		name          string
		token         string
		wantOp        string
		wantResult    string
		wantPrincipal string
		wantReason    string
	}{
		{"recovery accepted", used, "auth.recovery", audit.ResultOK, RecoveryPrincipal, ""},
		{"recovery replayed", used, "auth.recovery", audit.ResultRejected, AnonymousPrincipal, "already used"},
		{"recovery expired", mint(KindRecovery, "", time.Now().Add(-6*time.Minute)), "auth.recovery", audit.ResultRejected, AnonymousPrincipal, "expired"},
		{"recovery from the future", mint(KindRecovery, "", time.Now().Add(2*time.Minute)), "auth.recovery", audit.ResultRejected, AnonymousPrincipal, "in the future"},
		{"worker accepted", mint(KindWorker, "build-1", time.Now()), "auth.worker-auth", audit.ResultOK, "w_build-1", ""},
		{"worker truncated", mint(KindWorker, "build-1", time.Now())[:30], "auth.worker-auth", audit.ResultRejected, AnonymousPrincipal, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logged.Reset()
			_, err := a.Authenticate(ctx, tt.token)
			if (err == nil) != (tt.wantResult == audit.ResultOK) {
				t.Fatalf("Authenticate error = %v, want result %s", err, tt.wantResult)
			}
			var e audit.Event
			if err := json.Unmarshal(logged.Bytes(), &e); err != nil {
				t.Fatalf("audit line %q: %v", logged.String(), err)
			}
			if e.Operation != tt.wantOp || e.Result != tt.wantResult || e.Principal != tt.wantPrincipal ||
				!strings.Contains(e.Reason, tt.wantReason) {
				t.Errorf("audit event %+v, want %s %s by %s, reason containing %q",
					e, tt.wantOp, tt.wantResult, tt.wantPrincipal, tt.wantReason)
			}
			body := tt.token[strings.IndexByte(tt.token, '.')+1:]
			if strings.Contains(logged.String(), body) {
				t.Error("the audit line holds the token")
			}
		})
	}
}
