// Package noop is the baseline of the plugin round-trip benchmark: a
// go-plugin gRPC plugin whose wrapper service answers every call at once
// and does nothing. It speaks the same protocol (proto/plugin/v1) over the
// same transport as a kmsbroker plugin, go-plugin gRPC with automatic
// mTLS, so timing its calls measures the transport alone.
package noop

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// Handshake is the no-op plugin's go-plugin handshake. It differs from
// kmsbroker's, so neither side can be mistaken for the other. The cookie
// is a guard against running the program by hand, not a security
// boundary.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "KMSBROKER_BENCH_NOOP_PLUGIN",
	MagicCookieValue: "f0c1d2a3b4e5",
}

// Name is the plugin name the service is dispensed under.
const Name = "noop"

// Plugin is the go-plugin definition. The plugin program serves it with
// Serve; the host uses the zero value in its PluginSet.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	serve bool
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

var errHostSide = errors.New("noop: the host-side plugin definition cannot serve")

// GRPCServer registers the no-op wrapper service.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if !p.serve {
		return errHostSide
	}
	pluginv1.RegisterWrapperServer(s, server{})
	return nil
}

// GRPCClient returns a pluginv1.WrapperClient.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewWrapperClient(c), nil
}

// Serve serves the no-op plugin until the host goes away. The host must
// ask for automatic mTLS, as kmsbroker's host does.
func Serve() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{Name: &Plugin{serve: true}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// server answers Encrypt, Decrypt and Health with empty responses; the
// other methods are unimplemented.
type server struct {
	pluginv1.UnimplementedWrapperServer
}

func (server) Encrypt(context.Context, *pluginv1.EncryptRequest) (*pluginv1.EncryptResponse, error) {
	return &pluginv1.EncryptResponse{}, nil
}

func (server) Decrypt(context.Context, *pluginv1.DecryptRequest) (*pluginv1.DecryptResponse, error) {
	return &pluginv1.DecryptResponse{}, nil
}

func (server) Health(context.Context, *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{Configured: true}, nil
}
