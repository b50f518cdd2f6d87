package pluginhost

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/kmsbroker/kmsbroker/broker/config"
)

// TestClientConfigStartTimeout: a block's start_timeout, longer than
// go-plugin's one-minute default or not, is the timeout go-plugin's client
// ends up with, after NewClient has filled in its defaults.
func TestClientConfigStartTimeout(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "start_timeout.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{DefaultStartTimeout, 2 * time.Second, 90 * time.Second, 5 * time.Minute}
	if len(cfg.KMS) != len(want) {
		t.Fatalf("testdata has %d blocks; want %d", len(cfg.KMS), len(want))
	}
	for i, blk := range cfg.KMS {
		t.Run(blk.Name+"/"+want[i].String(), func(t *testing.T) {
			pc, err := BlockConfig(blk, "", nil).normalize()
			if err != nil {
				t.Fatal(err)
			}
			p := &Plugin{cfg: pc, log: hclog.NewNullLogger()}
			cc := p.clientConfig(p.log, nil)
			client := plugin.NewClient(cc)
			t.Cleanup(client.Kill)
			if cc.StartTimeout != want[i] {
				t.Errorf("go-plugin StartTimeout = %s; want %s", cc.StartTimeout, want[i])
			}
			if !cc.AutoMTLS || !cc.SkipHostEnv || cc.Managed || !slices.Equal(cc.AllowedProtocols, []plugin.Protocol{plugin.ProtocolGRPC}) {
				t.Errorf("ClientConfig AutoMTLS=%v SkipHostEnv=%v Managed=%v AllowedProtocols=%v; want true, true, false, [grpc]",
					cc.AutoMTLS, cc.SkipHostEnv, cc.Managed, cc.AllowedProtocols)
			}
		})
	}
}
