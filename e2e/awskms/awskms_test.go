package awskms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/service/kms"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
)

// TestServerThroughKMSAPI drives the harness through the real AWS KMS API: keys,
// an alias, encrypt and decrypt with an encryption context, and an alias
// repointed to another key after data was encrypted under it.
func TestServerThroughKMSAPI(t *testing.T) {
	srv := awskms.Start(t)
	kmsc := srv.Client()

	k1 := srv.CreateKey(t, "e2e self-test key 1")
	k2 := srv.CreateKey(t, "e2e self-test key 2")
	if k1.ID == k2.ID {
		t.Fatalf("two CreateKey calls returned the same key id %s", k1.ID)
	}
	alias := "alias/e2e-self-" + suffix(t)
	srv.CreateAlias(t, alias, k1.ID)

	t.Run("describe resolves every key reference", func(t *testing.T) {
		for _, ref := range []string{k1.ID, k1.ARN, alias} {
			if got := srv.Describe(t, ref); got != k1 {
				t.Errorf("Describe(%s) = %+v, want %+v", ref, got, k1)
			}
		}
	})

	plaintext := []byte("e2e plaintext under key 1")
	context1 := map[string]*string{"scope": aws.String("o_selftest")}
	ct1 := encrypt(t, kmsc, alias, plaintext, context1)

	t.Run("decrypt", func(t *testing.T) {
		otherContext := map[string]*string{"scope": aws.String("o_other")}
		const badCiphertext = kms.ErrCodeInvalidCiphertextException
		tests := []struct {
			name     string
			keyID    string // empty: the key the ciphertext names
			context  map[string]*string
			wantCode string // empty: success
		}{
			{name: "key from ciphertext", context: context1},
			{name: "key by ARN", keyID: k1.ARN, context: context1},
			{name: "key by alias", keyID: alias, context: context1},
			{name: "other context", context: otherContext, wantCode: badCiphertext},
			{name: "no context", wantCode: badCiphertext},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := &kms.DecryptInput{CiphertextBlob: ct1, EncryptionContext: tt.context}
				if tt.keyID != "" {
					in.KeyId = aws.String(tt.keyID)
				}
				out, err := kmsc.DecryptWithContext(context.Background(), in)
				if tt.wantCode != "" {
					var aerr awserr.Error
					if !errors.As(err, &aerr) || aerr.Code() != tt.wantCode {
						t.Fatalf("Decrypt() error = %v, want code %s", err, tt.wantCode)
					}
					return
				}
				if err != nil {
					t.Fatalf("Decrypt() error = %v, want nil", err)
				}
				if !bytes.Equal(out.Plaintext, plaintext) {
					t.Errorf("Decrypt() plaintext = %q, want %q", out.Plaintext, plaintext)
				}
				if got := aws.StringValue(out.KeyId); got != k1.ARN {
					t.Errorf("Decrypt() key = %s, want %s", got, k1.ARN)
				}
			})
		}
	})

	t.Run("alias repointed", func(t *testing.T) {
		srv.UpdateAlias(t, alias, k2.ID)
		if got := srv.Describe(t, alias); got != k2 {
			t.Fatalf("Describe(%s) after UpdateAlias = %+v, want %+v", alias, got, k2)
		}

		ct2 := encrypt(t, kmsc, alias, []byte("under key 2"), context1)
		if got := decryptKey(t, kmsc, ct2, context1); got != k2.ARN {
			t.Errorf("new ciphertext decrypts with %s, want %s", got, k2.ARN)
		}
		// Data made before the move still names, and needs, key 1.
		if got := decryptKey(t, kmsc, ct1, context1); got != k1.ARN {
			t.Errorf("old ciphertext decrypts with %s, want %s", got, k1.ARN)
		}
		_, err := kmsc.DecryptWithContext(context.Background(), &kms.DecryptInput{
			CiphertextBlob: ct1, EncryptionContext: context1, KeyId: aws.String(alias),
		})
		if err == nil {
			t.Error("old ciphertext decrypted through the repointed alias, want an error")
		}
	})
}

func encrypt(t *testing.T, c *kms.KMS, keyID string, plaintext []byte, ec map[string]*string) []byte {
	t.Helper()
	out, err := c.EncryptWithContext(context.Background(), &kms.EncryptInput{
		KeyId: aws.String(keyID), Plaintext: plaintext, EncryptionContext: ec,
	})
	if err != nil {
		t.Fatalf("Encrypt(%s) error = %v", keyID, err)
	}
	if len(out.CiphertextBlob) == 0 || bytes.Contains(out.CiphertextBlob, plaintext) {
		t.Fatalf("Encrypt(%s) ciphertext is empty or holds the plaintext", keyID)
	}
	return out.CiphertextBlob
}

// decryptKey decrypts ct and returns the ARN of the key that did it.
func decryptKey(t *testing.T, c *kms.KMS, ct []byte, ec map[string]*string) string {
	t.Helper()
	out, err := c.DecryptWithContext(context.Background(), &kms.DecryptInput{CiphertextBlob: ct, EncryptionContext: ec})
	if err != nil {
		t.Fatalf("Decrypt() error = %v", err)
	}
	return aws.StringValue(out.KeyId)
}

// suffix makes alias names unique, so the test can run against a shared
// external endpoint.
func suffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
