// Package sdk is the contract between kmsbroker and its wrapper plugins:
// the go-plugin handshake both sides must agree on, the plugin definition
// both sides dispense, and Serve, which turns any go-kms-wrapping v2
// wrapper into a plugin program.
//
// A plugin program is a main package that calls Serve with its wrapper and
// the settings it accepts; plugins/README.md walks through one. The host
// side lives in broker/pluginhost.
package sdk

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// ProtocolVersion is the version of the plugin protocol in proto/plugin/v1
// that this package speaks. A host refuses a plugin that offers another.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake every kmsbroker plugin and host use.
//
// The magic cookie is a guard for people, not a security boundary: it
// makes a plugin binary that is run by hand print a short explanation and
// exit instead of waiting for a host. Anyone who can read this source can
// set it. What authenticates the connection is go-plugin's automatic mTLS,
// which Serve insists on.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "KMSBROKER_PLUGIN",
	MagicCookieValue: "c3d9e0a5f17b4f8e92b6d04a7e1c58f3b20d9a6e4f7c1b85",
}

// PluginName is the name the wrapper service is dispensed under.
const PluginName = "wrapper"

// LogLevelEnv names the environment variable through which a host tells a
// plugin the lowest log level it will keep (trace, debug, info, warn,
// error). Serve defaults to info when it is unset or unknown.
const LogLevelEnv = "KMSBROKER_PLUGIN_LOG_LEVEL"

// WrapperPlugin is the go-plugin definition of the wrapper service. It is
// gRPC only. A host uses the zero value, usually through PluginSet; Serve
// builds the plugin side itself.
type WrapperPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// server is the implementation served on the plugin side; nil on the
	// host side.
	server pluginv1.WrapperServer
}

var _ plugin.GRPCPlugin = (*WrapperPlugin)(nil)

// errNoServer is returned when a host-side WrapperPlugin is asked to serve.
var errNoServer = errors.New("sdk: wrapper plugin has no server; plugin programs must use Serve")

// GRPCServer registers the wrapper service on s.
func (p *WrapperPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.server == nil {
		return errNoServer
	}
	pluginv1.RegisterWrapperServer(s, p.server)
	return nil
}

// GRPCClient returns a pluginv1.WrapperClient on c.
func (p *WrapperPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewWrapperClient(c), nil
}

// PluginSet is the plugin set a host passes to go-plugin's ClientConfig.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{PluginName: &WrapperPlugin{}}
}
