// Package awskms gives end-to-end tests an AWS KMS API server: the local-kms
// emulator, installed at a pinned version and started per test on a
// loopback port, or the endpoint named by BROKER_E2E_AWS_ENDPOINT (for
// example LocalStack). Keys and aliases are made through the real KMS API
// with aws-sdk-go, so the same helpers work against either.
package awskms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/kms"

	"github.com/kmsbroker/kmsbroker/e2e/loopback"
	"github.com/kmsbroker/kmsbroker/e2e/proc"
)

// Environment variables the harness reads. It never reads AWS_REGION,
// AWS_ACCESS_KEY_ID and the like: tests set those to prove the product's
// own settings win, and the harness must not follow them.
const (
	// EnvAWSEndpoint names an AWS KMS API endpoint to use instead of
	// starting the emulator, for example http://127.0.0.1:4566.
	EnvAWSEndpoint = "BROKER_E2E_AWS_ENDPOINT"
	// EnvAWSRegion is the region for EnvAWSEndpoint; default us-east-1.
	EnvAWSRegion = "BROKER_E2E_AWS_REGION"
	// EnvAWSAccessKey and EnvAWSSecretKey are the credentials for
	// EnvAWSEndpoint; both default to "test", which LocalStack accepts.
	EnvAWSAccessKey = "BROKER_E2E_AWS_ACCESS_KEY_ID"
	EnvAWSSecretKey = "BROKER_E2E_AWS_SECRET_ACCESS_KEY"
	// EnvCache overrides the directory the emulator is installed in.
	EnvCache = "BROKER_E2E_CACHE"
)

// EmulatorRegion and EmulatorAccount are what the emulator is started
// with; they appear in every ARN it issues. The region is deliberately not
// us-east-1, the default of many SDKs, so a product that drops its
// configured region is caught by the ARNs it sees.
const (
	EmulatorRegion  = "eu-west-3"
	EmulatorAccount = "111122223333"
)

// emulatorAccessKey is handed to clients of the emulator. The emulator
// checks no signatures; the secret key is random per server so a test can
// search logs for it.
const emulatorAccessKey = "AKIDLOCALKMSE2E"

// startTimeout bounds how long Start waits for the server to answer
// ListKeys. The emulator answers within a second; the margin covers a
// loaded two-core machine running tests in parallel.
const startTimeout = 30 * time.Second

// callTimeout bounds each API call the helpers make, so a wedged server
// fails the test instead of hanging it.
const callTimeout = 30 * time.Second

// Server is an AWS KMS API endpoint for one test, and the settings a client
// of it needs.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:38211.
	Endpoint string
	// Region is the region to configure clients with.
	Region string
	// AccessKey and SecretKey are the static credentials to use.
	AccessKey string
	SecretKey string
	// Kind says what is serving, for test logs and summaries:
	// "local-kms <version>" or "external endpoint".
	Kind string
	// External is true when the endpoint came from BROKER_E2E_AWS_ENDPOINT
	// and outlives the test; the helpers then delete what they create.
	External bool

	client *kms.KMS
	proc   *proc.Process
}

// Start returns an AWS KMS API server for t. With BROKER_E2E_AWS_ENDPOINT
// set it uses that endpoint as-is; otherwise it installs the emulator at
// EmulatorVersion (once per cache directory) and runs a fresh instance with
// an empty key store on a free loopback port, stopped in t.Cleanup. Start
// fails the test if the server does not answer.
//
// A fresh emulator has no keys; make them with CreateKey and CreateAlias.
// An external endpoint is shared, so tests that use it must pick alias
// names no other run uses at the same time.
func Start(t testing.TB) *Server {
	t.Helper()
	var s *Server
	if endpoint := os.Getenv(EnvAWSEndpoint); endpoint != "" {
		s = &Server{
			Endpoint:  endpoint,
			Region:    envOr(EnvAWSRegion, "us-east-1"),
			AccessKey: envOr(EnvAWSAccessKey, "test"),
			SecretKey: envOr(EnvAWSSecretKey, "test"),
			Kind:      "external endpoint",
			External:  true,
		}
	} else {
		s = startEmulator(t)
	}

	client, err := newClient(s)
	if err != nil {
		t.Fatalf("awskms: start: %v", err)
	}
	s.client = client

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	probe := func(ctx context.Context) error {
		_, err := s.client.ListKeysWithContext(ctx, &kms.ListKeysInput{})
		return err
	}
	if s.proc != nil {
		err = s.proc.WaitReady(ctx, probe)
	} else {
		err = probe(ctx)
	}
	if err != nil {
		t.Fatalf("awskms: %s at %s does not answer ListKeys: %v", s.Kind, s.Endpoint, err)
	}
	t.Logf("e2e: AWS KMS API: %s at %s (region %s)", s.Kind, s.Endpoint, s.Region)
	return s
}

func startEmulator(t testing.TB) *Server {
	t.Helper()
	bin, err := emulatorBinary()
	if err != nil {
		t.Fatalf("awskms: %v", err)
	}

	port := loopback.FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin)
	// Only what the emulator reads. The seed path names a file that does
	// not exist, so the emulator's default (/init/seed.yaml) can never
	// leak keys from the host into a test.
	cmd.Env = []string{
		"PORT=" + strconv.Itoa(port),
		"KMS_REGION=" + EmulatorRegion,
		"KMS_ACCOUNT_ID=" + EmulatorAccount,
		"KMS_DATA_PATH=" + filepath.Join(dir, "data"),
		"KMS_SEED_PATH=" + filepath.Join(dir, "no-seed.yaml"),
		"TMPDIR=" + dir,
	}
	p := proc.Start(t, "local-kms", cmd)

	// TODO: local-kms binds every interface (":PORT"), not only loopback;
	// it has no setting for the listen address.
	return &Server{
		Endpoint:  "http://" + loopback.Host + ":" + strconv.Itoa(port),
		Region:    EmulatorRegion,
		AccessKey: emulatorAccessKey,
		SecretKey: randomHex(t, 16),
		Kind:      "local-kms " + EmulatorVersion,
		proc:      p,
	}
}

// Client returns an aws-sdk-go KMS client for the server, configured only
// from the Server's fields: no shared config files, no AWS_* credentials.
func (s *Server) Client() *kms.KMS { return s.client }

// Pid returns the emulator's process id, or 0 for an external endpoint.
func (s *Server) Pid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

func newClient(s *Server) (*kms.KMS, error) {
	sess, err := session.NewSessionWithOptions(session.Options{
		Config: aws.Config{
			Endpoint:    aws.String(s.Endpoint),
			Region:      aws.String(s.Region),
			Credentials: credentials.NewStaticCredentials(s.AccessKey, s.SecretKey, ""),
			HTTPClient:  &http.Client{Timeout: callTimeout},
			// A local server either answers or is broken; retries only
			// slow down the failure.
			MaxRetries: aws.Int(0),
		},
		SharedConfigState: session.SharedConfigDisable,
	})
	if err != nil {
		return nil, fmt.Errorf("aws session for %s: %w", s.Endpoint, err)
	}
	return kms.New(sess), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("awskms: random: %v", err)
	}
	return hex.EncodeToString(b)
}
