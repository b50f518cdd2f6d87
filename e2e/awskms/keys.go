package awskms

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/service/kms"
)

// pendingWindowDays is how long an external endpoint keeps a key the
// harness scheduled for deletion: seven days, the minimum AWS allows.
const pendingWindowDays = 7

// Key names a KMS key both ways a product may be given it.
type Key struct {
	// ID is the bare key id, a UUID.
	ID string
	// ARN is the key's full ARN.
	ARN string
}

// CreateKey creates a symmetric encrypt/decrypt key and returns it. On an
// external endpoint the key is scheduled for deletion in t.Cleanup.
func (s *Server) CreateKey(t testing.TB, description string) Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out, err := s.client.CreateKeyWithContext(ctx, &kms.CreateKeyInput{
		Description: aws.String(description),
		KeySpec:     aws.String(kms.KeySpecSymmetricDefault),
		KeyUsage:    aws.String(kms.KeyUsageTypeEncryptDecrypt),
	})
	if err != nil {
		t.Fatalf("awskms: create key %q: %v", description, err)
	}
	key := Key{ID: aws.StringValue(out.KeyMetadata.KeyId), ARN: aws.StringValue(out.KeyMetadata.Arn)}
	if key.ID == "" || key.ARN == "" {
		t.Fatalf("awskms: create key %q: answer lacks key id or ARN", description)
	}
	if s.External {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			_, err := s.client.ScheduleKeyDeletionWithContext(ctx, &kms.ScheduleKeyDeletionInput{
				KeyId:               aws.String(key.ID),
				PendingWindowInDays: aws.Int64(pendingWindowDays),
			})
			if err != nil {
				t.Errorf("awskms: schedule deletion of key %s: %v", key.ID, err)
			}
		})
	}
	return key
}

// CreateAlias points the new alias (which must start with "alias/") at the
// key keyID, given as id or ARN. On an external endpoint the alias is
// deleted in t.Cleanup.
func (s *Server) CreateAlias(t testing.TB, alias, keyID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := s.client.CreateAliasWithContext(ctx, &kms.CreateAliasInput{
		AliasName:   aws.String(alias),
		TargetKeyId: aws.String(keyID),
	})
	if err != nil {
		t.Fatalf("awskms: create alias %s: %v", alias, err)
	}
	if s.External {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			in := &kms.DeleteAliasInput{AliasName: aws.String(alias)}
			if _, err := s.client.DeleteAliasWithContext(ctx, in); err != nil {
				t.Errorf("awskms: delete alias %s: %v", alias, err)
			}
		})
	}
}

// UpdateAlias repoints an existing alias at the key keyID, as an operator
// does to move a product to a new key without changing its config.
func (s *Server) UpdateAlias(t testing.TB, alias, keyID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := s.client.UpdateAliasWithContext(ctx, &kms.UpdateAliasInput{
		AliasName:   aws.String(alias),
		TargetKeyId: aws.String(keyID),
	})
	if err != nil {
		t.Fatalf("awskms: update alias %s: %v", alias, err)
	}
}

// Describe returns the key that ref resolves to now. ref may be a key id,
// a key ARN, an alias name or an alias ARN.
func (s *Server) Describe(t testing.TB, ref string) Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	out, err := s.client.DescribeKeyWithContext(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	if err != nil {
		t.Fatalf("awskms: describe %s: %v", ref, err)
	}
	return Key{ID: aws.StringValue(out.KeyMetadata.KeyId), ARN: aws.StringValue(out.KeyMetadata.Arn)}
}
