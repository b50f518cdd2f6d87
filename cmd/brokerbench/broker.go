package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kmsbroker/kmsbroker/client"
	"github.com/kmsbroker/kmsbroker/cmd/brokerbench/internal/child"
)

// readyTimeout bounds a brokerd start, generous for a loaded machine; a
// start slower than the 300 ms goal still gets measured.
const readyTimeout = 60 * time.Second

// broker is a running brokerd process.
type broker struct {
	proc  *child.Process
	url   string // http://127.0.0.1:PORT
	token string
}

func (br *broker) stop() { br.proc.Stop() }

// startBroker starts bin/brokerd with args and waits until
// /v1/sys/health answers 200; it returns the time from just before the
// process started to that answer.
func (b *bench) startBroker(ctx context.Context, name, addr string, args ...string) (*broker, time.Duration, error) {
	cmd := exec.Command(filepath.Join(b.bin, "brokerd"), args...)
	cmd.Env = append(os.Environ(), "BROKER_DEV_TOKEN=", "BROKER_CONFIG=")
	t0 := time.Now()
	proc, err := child.Start("brokerd "+name, cmd, filepath.Join(b.dir, "brokerd-"+name+".log"))
	if err != nil {
		return nil, 0, err
	}
	br := &broker{proc: proc, url: "http://" + addr}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := proc.WaitHTTP(ctx, b.http, br.url+"/v1/sys/health"); err != nil {
		proc.Stop()
		return nil, 0, err
	}
	return br, time.Since(t0), nil
}

// clients returns n gRPC SDK clients, each with its own connection, the
// way n separate application processes would connect. Retries are off so
// that a failure shows instead of being smoothed over.
func (br *broker) clients(n int) ([]*client.Client, error) {
	return br.clientsAt(br.url, n)
}

// clientsAt is clients for the API at url, such as a gRPC-only listener.
func (br *broker) clientsAt(url string, n int) ([]*client.Client, error) {
	cs := make([]*client.Client, n)
	for i := range cs {
		c, err := client.New(client.Config{
			Address:     url,
			Credentials: client.Token(br.token),
			MaxRetries:  -1,
		})
		if err != nil {
			closeClients(cs[:i])
			return nil, err
		}
		cs[i] = c
	}
	return cs, nil
}

func closeClients(cs []*client.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// newHTTPClient keeps enough idle connections that each of 64 concurrent
// callers reuses its own, as separate clients would.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// freeAddr returns a loopback address whose port was free a moment ago.
// Another process may take it first; brokerd then fails to listen and
// the benchmark stops with its log.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serverConfig is a recovery-less brokerd config: root, worker-auth and
// config, each on its own aead plugin block, SQLite at dbPath, plain HTTP.
func (b *bench) serverConfig(addr, dbPath string, keys [3]string) string {
	return fmt.Sprintf(`log_level = "warn"
listener "tcp" {
  address     = %q
  tls_disable = true
}
storage "sqlite" { path = %q }
plugins { directory = %q }
kms "aead" {
  purpose = ["root"]
  key     = %q
  key_id  = "bench-root"
}
kms "aead" {
  purpose = ["worker-auth"]
  key     = %q
  key_id  = "bench-worker-auth"
}
kms "aead" {
  purpose = ["config"]
  key     = %q
  key_id  = "bench-config"
}
`, addr, dbPath, b.bin, keys[0], keys[1], keys[2])
}

// writeServerConfig writes serverConfig to dir/name.hcl, readable by the
// owner only since it holds keys.
func (b *bench) writeServerConfig(name, addr, dbPath string, keys [3]string) (string, error) {
	path := filepath.Join(b.dir, name+".hcl")
	return path, os.WriteFile(path, []byte(b.serverConfig(addr, dbPath, keys)), 0o600)
}
