package pluginhost

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPluginOutputIsLogged: what a plugin prints after the handshake, and
// its own log lines, reach the host's logger tagged with block and plugin,
// with the plugin's secret setting, which each of them holds, replaced by
// a marker.
func TestPluginOutputIsLogged(t *testing.T) {
	var out syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug})
	p := startPlugin(t, Config{
		Name: "talky", Type: "chatter", Directory: testBin, Logger: logger,
		Settings: map[string]string{"key": testKey},
	})
	if _, err := p.Encrypt(context.Background(), []byte("plaintext-never-logged"), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"chatter on stdout key=<value of key>",
		"chatter on stderr key=<value of key>",
		"chatter in the log: block=talky plugin=chatter error=\"bad key <value of key>\" key=\"<value of key>\"",
		"configured",
	}
	waitFor(t, 5*time.Second, "the plugin's lines in the host log", func() bool {
		log := out.String()
		for _, w := range want {
			if !strings.Contains(log, w) {
				return false
			}
		}
		return true
	})
	for _, line := range strings.Split(out.String(), "\n") {
		for _, w := range want {
			if strings.Contains(line, w) && (!strings.Contains(line, "block=talky") || !strings.Contains(line, "plugin=chatter")) {
				t.Errorf("line %q is not tagged block=talky plugin=chatter", line)
			}
		}
	}
	p.Stop()
	for _, secret := range []string{testKey, "plaintext-never-logged"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("host log contains %q", secret)
		}
	}
}
