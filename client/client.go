// Package client is the Go SDK for the kmsbroker API.
//
// A Client speaks gRPC to a broker's listener. It authenticates every call
// with a Credentials source, which is asked afresh for each call and each
// retry, so one-time credentials such as recovery tokens work unchanged.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// DefaultAddress is where a dev broker listens.
const DefaultAddress = "http://127.0.0.1:9200"

// DefaultTimeout bounds one call, retries included, when the caller's
// context has no deadline.
const DefaultTimeout = 30 * time.Second

// maxReconnectDelay bounds the wait between reconnection attempts after
// the broker went away: a restarted broker is found within seconds.
const maxReconnectDelay = 5 * time.Second

// maxMessageBytes matches the server's request limit with room for the
// envelope overhead of a maximal plaintext.
const maxMessageBytes = 8 << 20

// Credentials supplies the bearer credential for one call.
type Credentials interface {
	// Credential returns the credential to send. It is called for every
	// call and every retry.
	Credential(ctx context.Context) (string, error)
}

// Token is a static client token.
type Token string

// Credential returns the token.
func (t Token) Credential(context.Context) (string, error) { return string(t), nil }

// Config configures a Client. The zero value talks to DefaultAddress
// without credentials.
type Config struct {
	// Address is the broker's URL: http://host:port or https://host:port.
	Address string
	// Credentials authenticate each call.
	Credentials Credentials
	// CACertFile, when set, is the PEM bundle that verifies an https
	// broker; otherwise the system roots do.
	CACertFile string
	// TLSServerName overrides the name checked in the server certificate.
	TLSServerName string
	// Timeout bounds a call whose context has no deadline. Default:
	// DefaultTimeout.
	Timeout time.Duration
	// MaxRetries is how often a call that failed with UNAVAILABLE is
	// retried with backoff. Default 3; negative disables retries.
	MaxRetries int
}

// Client is a connection to a broker. It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	api     apiv1.BrokerClient
	timeout time.Duration
}

// New returns a client for cfg. It does not dial until the first call.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client: address %q is not a URL such as %s", cfg.Address, DefaultAddress)
	}

	var transport credentials.TransportCredentials
	switch u.Scheme {
	case "http":
		transport = insecure.NewCredentials()
	case "https":
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
		if cfg.CACertFile != "" {
			pem, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("client: read CA certificate: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("client: no certificate found in %s", cfg.CACertFile)
			}
			tc.RootCAs = pool
		}
		transport = credentials.NewTLS(tc)
	default:
		return nil, fmt.Errorf("client: address %q must start with http:// or https://", cfg.Address)
	}

	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = 3
	}

	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		// gRPC's default reconnect backoff grows to two minutes, so a
		// client would keep failing long after a restarted broker is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: maxReconnectDelay,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}
	if retries > 0 {
		opts = append(opts, grpc.WithDefaultServiceConfig(retryServiceConfig(retries)))
	}
	if cfg.Credentials != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(perRPC{creds: cfg.Credentials, secure: u.Scheme == "https"}))
	}
	conn, err := grpc.NewClient(u.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{conn: conn, api: apiv1.NewBrokerClient(conn), timeout: cfg.Timeout}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// API returns the raw generated client, for calls this package does not
// wrap.
func (c *Client) API() apiv1.BrokerClient { return c.api }

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// retryable are the API methods a client may repeat after UNAVAILABLE,
// which the broker returns while a plugin restarts or its store is down:
// reads, and writes whose repeat does no harm (a second envelope, a
// second rewrap, a second revocation). Creating a scope or a token,
// rotating and destroying are not repeated: their first attempt may have
// been applied before the answer was lost.
var retryable = []string{
	"GetScope", "ListScopes", "ListKeyVersions", "ListTokens", "Status",
	"Encrypt", "Decrypt", "ReEncrypt", "DeriveKey", "RewrapKeys", "RevokeToken",
}

// retryServiceConfig retries the retryable methods on UNAVAILABLE.
func retryServiceConfig(maxRetries int) string {
	names := make([]string, len(retryable))
	for i, m := range retryable {
		names[i] = fmt.Sprintf(`{"service":"kmsbroker.api.v1.Broker","method":%q}`, m)
	}
	return fmt.Sprintf(`{"methodConfig":[{"name":[%s],
"retryPolicy":{"maxAttempts":%d,"initialBackoff":"0.2s","maxBackoff":"2s","backoffMultiplier":2,
"retryableStatusCodes":["UNAVAILABLE"]}}]}`, strings.Join(names, ","), min(maxRetries+1, 5))
}

// perRPC adapts Credentials to gRPC, which asks for metadata per attempt.
type perRPC struct {
	creds  Credentials
	secure bool
}

func (p perRPC) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	cred, err := p.creds.Credential(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: credential: %w", err)
	}
	if cred == "" {
		return nil, errors.New("client: empty credential")
	}
	return map[string]string{"authorization": "Bearer " + cred}, nil
}

// RequireTransportSecurity is false so that dev brokers on plain HTTP on
// loopback work; use https for anything else.
func (p perRPC) RequireTransportSecurity() bool { return false }
