package sdk

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// clientCertEnv is where go-plugin's automatic mTLS hands the host's
// certificate to the plugin.
const clientCertEnv = "PLUGIN_CLIENT_CERT"

// OriginTrailer is a gRPC trailer that Serve sets on every answer, errors
// included. A host that finds it knows the plugin process answered, so an
// UNAVAILABLE error came from the KMS and not from a lost connection.
const OriginTrailer = "kmsbroker-plugin-origin"

// markOrigin sets OriginTrailer on every unary answer.
func markOrigin(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs(OriginTrailer, "1"))
	return handler(ctx, req)
}

// Serve serves w as a kmsbroker plugin over go-plugin gRPC and returns
// when the host closes the connection. Call it from main; it takes over
// stdout for the handshake and stderr for logs.
//
// Serve refuses to run unless the host negotiates go-plugin's automatic
// mTLS, so only the process that started the plugin can call it. Logs are
// JSON lines on stderr, which the host re-logs under the KMS block's name;
// the level comes from LogLevelEnv. If w implements
// wrapping.InitFinalizer, Init runs after a successful Configure and
// Finalize when serving ends.
func Serve(w wrapping.Wrapper, opt ...Option) {
	// Keep the real stderr: after the handshake go-plugin redirects
	// os.Stderr into its stdio stream, and the host only parses log lines
	// from the process's own stderr.
	stderr := os.Stderr
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Output:     stderr,
		Level:      level,
		JSONFormat: true,
	})

	if os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue && os.Getenv(clientCertEnv) == "" {
		fmt.Fprintln(stderr, "kmsbroker plugin: refusing to serve without automatic mTLS; the host must set AutoMTLS")
		os.Exit(1)
	}

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins: plugin.PluginSet{
			PluginName: &WrapperPlugin{server: NewServer(w, logger, opt...)},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.UnaryInterceptor(markOrigin))...)
		},
		Logger: logger,
	})

	if fin, ok := w.(wrapping.InitFinalizer); ok {
		if err := fin.Finalize(context.Background()); err != nil {
			logger.Warn("finalize wrapper", "error", err)
		}
	}
}
