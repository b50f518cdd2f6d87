package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/kms"

	"github.com/kmsbroker/kmsbroker/plugins/plugintest"
)

// Credentials and region for a test KMS server, which accepts any.
const (
	testRegion    = "us-east-1"
	testAccessKey = "AKIAPLUGINTEST"
	testSecretKey = "plugintest-secret-access-key"
)

// kmsEndpoint returns the URL of a server speaking the AWS KMS API:
// BROKER_E2E_AWS_ENDPOINT when set, otherwise local-kms started from PATH
// or from the e2e suite's tool cache. With neither, the test is skipped
// with a line that says what to set.
func kmsEndpoint(t *testing.T) string {
	t.Helper()
	if ep := os.Getenv("BROKER_E2E_AWS_ENDPOINT"); ep != "" {
		return ep
	}
	bin := localKMS()
	if bin == "" {
		t.Skip("SKIP awskms against a real server: set BROKER_E2E_AWS_ENDPOINT (for example LocalStack), put local-kms (github.com/nsmithuk/local-kms) on PATH, or run the e2e suite once to install it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "KMS_REGION="+testRegion,
		"KMS_ACCOUNT_ID=111122223333", "KMS_DATA_PATH="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start local-kms: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ep)
		if err == nil {
			resp.Body.Close()
			return ep
		}
		if time.Now().After(deadline) {
			t.Fatalf("local-kms at %s not answering after 30s: %v", ep, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// localKMS finds a local-kms binary: on PATH, or where the e2e suite
// installs it ($BROKER_E2E_CACHE/bin, else <user cache>/kmsbroker-e2e/bin).
func localKMS() string {
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p
	}
	cache := os.Getenv("BROKER_E2E_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(dir, "kmsbroker-e2e")
	}
	p := filepath.Join(cache, "bin", "local-kms")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	return ""
}

// createKey makes a symmetric key on the server and returns its id.
func createKey(t *testing.T, endpoint string) string {
	t.Helper()
	sess, err := session.NewSession(&aws.Config{
		Region:      aws.String(testRegion),
		Endpoint:    aws.String(endpoint),
		Credentials: credentials.NewStaticCredentials(testAccessKey, testSecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kms.New(sess).CreateKey(&kms.CreateKeyInput{Description: aws.String("kmsbroker plugintest")})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return aws.StringValue(out.KeyMetadata.KeyId)
}

// TestConformance runs the plugin conformance suite against the built
// program and a real AWS KMS API server.
func TestConformance(t *testing.T) {
	endpoint := kmsEndpoint(t)
	keyID := createKey(t, endpoint)
	exe, err := plugintest.Build(t.TempDir(), "awskms", "./plugins/awskms")
	if err != nil {
		t.Fatal(err)
	}
	settings := func(over map[string]string) map[string]string {
		s := map[string]string{
			"kms_key_id": keyID, "region": testRegion, "endpoint": endpoint,
			"access_key": testAccessKey, "secret_key": testSecretKey, "disallow_env_vars": "true",
		}
		for k, v := range over {
			s[k] = v
		}
		return s
	}
	plugintest.Run(t, plugintest.Config{
		Path:     exe,
		Settings: settings(nil),
		BadSettings: []plugintest.BadSettings{
			{Settings: settings(map[string]string{"kms_key_id": "alias/plugintest-no-such-key"}), Setting: `"kms_key_id"`},
			{Settings: settings(map[string]string{"disallow_env_vars": "perhaps"}), Setting: `"disallow_env_vars"`},
		},
	})
}
