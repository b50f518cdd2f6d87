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
	cmd := exec.Command(path)
	cmd.SysProcAttr = sysProcAttr()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{Name: &Plugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	proto, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("start no-op plugin: %w", err)
	}
	raw, err := proto.Dispense(Name)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("start no-op plugin: dispense: %w", err)
	}
	rpc, ok := raw.(pluginv1.WrapperClient)
	if !ok {
		pc.Kill()
		return nil, fmt.Errorf("start no-op plugin: dispensed %T, want a wrapper client", raw)
	}
	return &Client{pc: pc, RPC: rpc}, nil
}

// Kill stops the plugin process.
func (c *Client) Kill() { c.pc.Kill() }
