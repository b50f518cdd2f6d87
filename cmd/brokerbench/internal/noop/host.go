package noop

import (
	"fmt"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// Client is a running no-op plugin process and the raw gRPC client of its
// service, with nothing of kmsbroker's plugin host in between.
type Client struct {
	pc  *plugin.Client
	RPC pluginv1.WrapperClient
}

// Start starts the no-op plugin program at path with automatic mTLS and
// returns once its service can be called. The caller must call Kill.
func Start(path string) (*Client, error) {
	return Dial(exec.Command(path), Handshake, plugin.PluginSet{Name: &Plugin{}}, Name)
}

// Dial starts any go-plugin gRPC program that serves the wrapper service
// under name, with automatic mTLS, and returns the raw client of the
// service: the same transport a kmsbroker host uses, without the host.
func Dial(cmd *exec.Cmd, hs plugin.HandshakeConfig, set plugin.PluginSet, name string) (*Client, error) {
	cmd.SysProcAttr = sysProcAttr()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hs,
		Plugins:          set,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	proto, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("start plugin %s: %w", cmd.Path, err)
	}
	raw, err := proto.Dispense(name)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("start plugin %s: dispense: %w", cmd.Path, err)
	}
	rpc, ok := raw.(pluginv1.WrapperClient)
	if !ok {
		pc.Kill()
		return nil, fmt.Errorf("start plugin %s: dispensed %T, want a wrapper client", cmd.Path, raw)
	}
	return &Client{pc: pc, RPC: rpc}, nil
}

// Kill stops the plugin process.
func (c *Client) Kill() { c.pc.Kill() }
