package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
)

// TestAWSConfigWinsOverEnvironment starts the broker with AWS_REGION,
// AWS_KMS_ENDPOINT and friends in its environment all pointing somewhere
// useless: the settings in the config must win. The same key given bare
// in one run and as an ARN in the next must open each other's envelopes
// on the one store.
func TestAWSConfigWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	layout := binaries.Product(t)
	srv := awskms.Start(t)
	key := srv.CreateKey(t, "broker root")
	recovery := aeadBlock(t, "recovery-1", "recovery")

	// Nothing listens on dead: an SDK that followed the environment would
	// fail every call.
	dead := fmt.Sprintf("http://%s:%d", loopback.Host, loopback.FreePort(t))
	const bogusRegion = "xx-bogus-1"
	env := []string{
		"AWS_REGION=" + bogusRegion,
		"AWS_DEFAULT_REGION=" + bogusRegion,
		"AWS_KMS_ENDPOINT=" + dead,
		"AWS_ENDPOINT_URL=" + dead,
		"AWS_ENDPOINT_URL_KMS=" + dead,
		"AWSKMS_WRAPPER_KEY_ID=alias/not-this-key",
		"VAULT_AWSKMS_SEAL_KEY_ID=alias/not-this-key",
		"AWS_ACCESS_KEY_ID=AKIDFROMTHEENVIRONMENT",
		"AWS_SECRET_ACCESS_KEY=" + secretText(t, "env-secret"),
	}

	t.Run("control: the environment is live", func(t *testing.T) {
		// Without endpoint and region in the config the plugin takes them
		// from the environment and cannot reach KMS: the root block fails
		// and says where it tried. This proves the variables above reach
		// the plugin and would break it if they won.
		blk := awsBlock(srv, key.ID, "root")
		delete(blk.Settings, "endpoint")
		delete(blk.Settings, "region")
		c := newBroker(t, layout, blk, recovery)
		c.env = env
		err := c.startErr()
		switch {
		case errors.Is(err, proc.ErrExited):
			// brokerd gave up on the block; its output says why.
		case err != nil:
			t.Fatal(err)
		default:
			if code, ready := c.mustHealth(); code != 503 || ready {
				t.Errorf("health with the endpoint from the environment: got %d ready=%t, want 503", code, ready)
			}
		}
		wantContains(t, "brokerd log with the endpoint from the environment", c.log(),
			strings.TrimPrefix(dead, "http://"), "connection refused")
	})

	bare := []kmsBlock{awsBlock(srv, key.ID, "root"), recovery}
	b := newBroker(t, layout, bare...)
	b.env = env
	recoveryPath := writeFile(t, b.dir, "recovery.hcl", recovery.hcl(t))
	b.start()
	if code, ready := b.mustHealth(); code != 200 || !ready {
		t.Fatalf("health: got %d ready=%t, want 200 ready=true", code, ready)
	}
	admin := tokenCred(b.bootstrapAdmin(recoveryPath))
	if got := b.status(admin).purpose(b, "root").KeyID; got != key.ID && got != key.ARN {
		t.Errorf("status of root: key id %q, want the configured key %s, not AWSKMS_WRAPPER_KEY_ID", got, key.ARN)
	}
	checkEffectiveAWSLog(t, b.log(), srv, bogusRegion, dead)

	b.createScope(admin, "o_bare")
	fromBare := b.encrypt(admin, "o_bare", "row-1")

	// The same key by ARN, on the same store.
	byARN := []kmsBlock{awsBlock(srv, key.ARN, "root"), recovery}
	b.restart(byARN...)
	b.decrypt(admin, fromBare)
	b.createScope(admin, "o_arn")
	fromARN := b.encrypt(admin, "o_arn", "row-2")
	checkEffectiveAWSLog(t, b.log(), srv, bogusRegion, dead)

	b.restart(bare...)
	b.decrypt(admin, fromARN)
	b.decrypt(admin, fromBare)

	// Both runs recorded the one key, by its ARN.
	b.wantKEKsWrappedBy(admin, "o_bare", key.ARN)
	b.wantKEKsWrappedBy(admin, "o_arn", key.ARN)
}

// checkEffectiveAWSLog checks what a brokerd log says about the awskms
// block: the configured region and endpoint, each with "config" as its
// source, and nowhere a value from the environment.
func checkEffectiveAWSLog(t *testing.T, log string, srv *awskms.Server, bogusRegion, bogusEndpoint string) {
	t.Helper()
	for _, bogus := range []string{bogusRegion, bogusEndpoint} {
		if strings.Contains(log, bogus) {
			t.Errorf("brokerd log names %q from the environment:\n%s", bogus, log)
		}
	}
	var ready string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "kms block ready") && strings.Contains(line, "plugin=awskms") {
			ready = line
		}
	}
	if ready == "" {
		t.Fatalf("brokerd log has no \"kms block ready\" line for the awskms block:\n%s", log)
	}
	wantContains(t, "kms block ready line of the awskms block", ready,
		" region="+srv.Region+" ", "region_source=config",
		" endpoint="+srv.Endpoint+" ", "endpoint_source=config")
}
