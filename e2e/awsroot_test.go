package e2e

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/service/kms"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
)

// TestRootKeyRotationAcrossAWSKeys moves every scope from one AWS KMS key
// to another the documented way: the new key as root and the old as
// previous-root, a rewrap of all scopes, then the old key removed from
// the config and disabled in KMS. Everything encrypted before must still
// decrypt.
func TestRootKeyRotationAcrossAWSKeys(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)
	key1 := srv.CreateKey(t, "broker root 1")
	key2 := srv.CreateKey(t, "broker root 2")
	recovery := aeadBlock(t, "recovery-1", "recovery")

	b := newBroker(t, layout, awsBlock(srv, key1.ID, "root"), recovery)
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	b.start()
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))

	scopes := []string{"o_one", "o_two", "o_three"}
	var all []data
	for _, s := range scopes {
		b.createScope(admin, s)
		all = append(all, b.encrypt(admin, s, "before-"+s))
	}
	// A second KEK version, so the rewrap must cover more than the
	// newest version of a scope.
	b.ok(admin, "scopes rotate-keys", "-id=o_two")
	all = append(all, b.encrypt(admin, "o_two", "after-rotation"))
	for _, s := range scopes {
		b.wantKEKsWrappedBy(admin, s, key1.ARN)
	}

	// Step 1: the new key encrypts, the old one only decrypts.
	b.restart(awsBlock(srv, key2.ID, "root"), awsBlock(srv, key1.ID, "previous-root"), recovery)
	for _, d := range all {
		b.decrypt(admin, d)
	}
	b.wantRootKeys(admin, rootKeysOut{
		CurrentKeyID: key2.ARN, KeyVersions: map[string]int{key1.ARN: 4}, OnOtherKeys: 4,
	})
	var res struct {
		Scopes          int `json:"scopes"`
		RootKeyVersions int `json:"root_key_versions"`
	}
	b.okJSON(&res, admin, "scopes rewrap", "-all")
	if res.Scopes != 3 || res.RootKeyVersions != 4 {
		t.Errorf("scopes rewrap -all: got %d scopes, %d KEK versions; want 3 and 4", res.Scopes, res.RootKeyVersions)
	}
	for _, s := range scopes {
		b.wantKEKsWrappedBy(admin, s, key2.ARN)
	}
	// Status tells the operator previous-root may go now.
	b.wantRootKeys(admin, rootKeysOut{
		CurrentKeyID: key2.ARN, KeyVersions: map[string]int{key2.ARN: 4}, OnOtherKeys: 0,
	})
	all = append(all, b.encrypt(admin, "o_one", "during-move"))

	// Step 2: key 1 leaves the config and is disabled in KMS, so anything
	// still wrapped by it would fail from here on.
	b.stop()
	disableKey(t, srv, key1)
	b.restart(awsBlock(srv, key2.ID, "root"), recovery)
	if code, ready := b.mustHealth(); code != 200 || !ready {
		t.Fatalf("health after dropping previous-root: got %d ready=%t, want 200 ready=true", code, ready)
	}
	for _, d := range all {
		b.decrypt(admin, d)
	}
	b.createScope(admin, "o_four")
	b.wantKEKsWrappedBy(admin, "o_four", key2.ARN)
	b.decrypt(admin, b.encrypt(admin, "o_four", "after-move"))
}

// disableKey disables key in KMS and checks that KMS now refuses it, so
// a test that relies on the key being gone cannot pass by accident.
func disableKey(t *testing.T, srv *awskms.Server, key awskms.Key) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &kms.DisableKeyInput{KeyId: aws.String(key.ID)}
	if _, err := srv.Client().DisableKeyWithContext(ctx, in); err != nil {
		t.Fatalf("disable key %s: %v", key.ID, err)
	}
	_, err := srv.Client().EncryptWithContext(ctx,
		&kms.EncryptInput{KeyId: aws.String(key.ID), Plaintext: []byte("probe")})
	var aerr awserr.Error
	if !errors.As(err, &aerr) || aerr.Code() != kms.ErrCodeDisabledException {
		t.Fatalf("encrypt with disabled key %s: got %v, want %s", key.ID, err, kms.ErrCodeDisabledException)
	}
}

// TestAWSAliasRepointed encrypts with the root key named by an alias,
// then repoints the alias at another key, as an operator does to move to
// a new key without touching the config. The broker records the key the
// alias resolved to, so old data still decrypts after a restart while new
// keys go to the new target.
func TestAWSAliasRepointed(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)
	key1 := srv.CreateKey(t, "broker root 1")
	key2 := srv.CreateKey(t, "broker root 2")
	alias := uniqueAlias(t, "broker-root")
	srv.CreateAlias(t, alias, key1.ID)
	recovery := aeadBlock(t, "recovery-1", "recovery")
	blocks := []kmsBlock{awsBlock(srv, alias, "root"), recovery}

	b := newBroker(t, layout, blocks...)
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	b.start()
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))
	b.createScope(admin, "o_old")
	old := b.encrypt(admin, "o_old", "row-1")
	b.wantKEKsWrappedBy(admin, "o_old", key1.ARN)

	srv.UpdateAlias(t, alias, key2.ID)
	if got := srv.Describe(t, alias); got.ID != key2.ID {
		t.Fatalf("alias %s resolves to %s after UpdateAlias, want %s", alias, got.ID, key2.ID)
	}
	b.restart(blocks...)

	b.decrypt(admin, old)
	b.wantKEKsWrappedBy(admin, "o_old", key1.ARN)

	b.createScope(admin, "o_new")
	b.wantKEKsWrappedBy(admin, "o_new", key2.ARN)
	b.decrypt(admin, b.encrypt(admin, "o_new", "row-2"))
	// Status shows the old key still holds one KEK version.
	b.wantRootKeys(admin, rootKeysOut{
		CurrentKeyID: key2.ARN, KeyVersions: map[string]int{key1.ARN: 1, key2.ARN: 1}, OnOtherKeys: 1,
	})

	// A rotation puts the old scope's newest KEK on the new target and
	// leaves its first one where it was.
	b.ok(admin, "scopes rotate-keys", "-id=o_old")
	got := b.kekWrappers(admin, "o_old")
	if got[1] != key1.ARN || got[2] != key2.ARN {
		t.Errorf("o_old KEK versions after rotation: wrapped by %v, want 1: %s, 2: %s", got, key1.ARN, key2.ARN)
	}
	b.decrypt(admin, old)
}

// wantRootKeys checks the root_keys part of status: which key wraps now
// and how many live KEK versions each external key wraps.
func (b *broker) wantRootKeys(c cred, want rootKeysOut) {
	b.t.Helper()
	got := b.status(c).RootKeys
	if got.CurrentKeyID != want.CurrentKeyID || got.OnOtherKeys != want.OnOtherKeys || got.Error != "" ||
		!maps.Equal(got.KeyVersions, want.KeyVersions) {
		b.t.Errorf("status root_keys: got %+v, want %+v", got, want)
	}
}
