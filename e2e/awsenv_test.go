package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kmsbroker/kmsbroker/e2e/awskms"
	"github.com/kmsbroker/kmsbroker/e2e/binaries"
	"github.com/kmsbroker/kmsbroker/e2e/loopback"
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
		// from the environment and cannot reach KMS, so brokerd refuses
		// to start, naming the block. This proves the variables above
		// reach the plugin and would break it if they won.
		blk := awsBlock(srv, key.ID, "root")
		delete(blk.Settings, "endpoint")
		delete(blk.Settings, "region")
		c := brokerConfig{Address: loopback.Addr(t), DBPath: t.TempDir() + "/broker.db", Blocks: []kmsBlock{blk, recovery}}
		path := writeFile(t, t.TempDir(), "broker.hcl", c.hcl(t))
		r := runBrokerd(t, layout, env, "server", "-config="+path)
		if r.code != 1 {
			t.Fatalf("brokerd server with the endpoint from the environment: want exit 1, got\n%s", r)
		}
		wantContains(t, "brokerd server with the endpoint from the environment", r.stderr, "awskms")
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
	if got := b.status(admin).purpose(b, "root").KeyID; got != key.ID {
		t.Errorf("status of root: key id %q, want the configured key %s, not AWSKMS_WRAPPER_KEY_ID", got, key.ID)
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
// block's region and endpoint: never the environment's values, and, once
// the broker logs them, the configured ones with "config" as the source.
func checkEffectiveAWSLog(t *testing.T, log string, srv *awskms.Server, bogusRegion, bogusEndpoint string) {
	t.Helper()
	for _, bogus := range []string{bogusRegion, bogusEndpoint} {
		if strings.Contains(log, bogus) {
			t.Errorf("brokerd log names %q from the environment:\n%s", bogus, log)
		}
	}
	var effective string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "region") && strings.Contains(line, srv.Region) {
			effective = line
		}
	}
	if effective == "" {
		// TODO: brokerd logs neither the effective AWS region nor the
		// endpoint nor their source (issue 6, "Effective settings"): the
		// awskms plugin returns region, endpoint, region_source and
		// endpoint_source as configure metadata, and the plugin host
		// drops them. Until it logs them only the absence of the
		// environment's values is checked.
		t.Logf("TODO: brokerd log does not name the effective AWS region and endpoint")
		return
	}
	wantContains(t, "log line with the effective region", effective, srv.Region, srv.Endpoint, "config")
}
