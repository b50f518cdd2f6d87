// Package server serves the broker's API: gRPC and HTTP/JSON from one proto
// definition on one listener, plus the health and metrics endpoints.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kmsbroker/kmsbroker/broker/audit"
	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// Limits of the HTTP listener.
const (
	// DefaultMaxPlaintext bounds one plaintext. The broker encrypts
	// secrets and records, not files; 1 MiB leaves room for large records
	// while keeping a request's memory small.
	DefaultMaxPlaintext = 1 << 20
	// MaxMaxPlaintext is the largest MaxPlaintext allowed: the keyring's
	// own limit on one envelope.
	MaxMaxPlaintext = keyring.MaxPlaintextLen
	// requestOverhead is what a request holds besides its plaintext: the
	// AAD, the other fields and JSON punctuation.
	requestOverhead = 64 << 10
	// maxHeaderBytes bounds request headers; a bearer token is 48 bytes.
	maxHeaderBytes = 64 << 10
	// readHeaderTimeout and idleTimeout shed slow or idle clients.
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// DefaultReadTimeout bounds reading one whole request, body included,
	// and DefaultWriteTimeout handling it and writing the answer: a
	// maximal request crosses a slow link in seconds, so a client still
	// sending after this is holding a connection, not using it.
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = time.Minute
)

// maxRequestBytes bounds a request body for a plaintext limit: the
// plaintext base64-encoded in JSON, plus the other fields.
func maxRequestBytes(maxPlaintext int) int {
	return maxPlaintext/3*4 + 4 + requestOverhead
}

// Config configures a Server.
type Config struct {
	Keys   Keys
	Tokens Tokens
	Authn  Authenticator
	// Audit receives security events; nil discards them.
	Audit *audit.Log
	// Status builds the status response; it is called once per request.
	Status func(context.Context) *apiv1.StatusResponse
	// Ready reports readiness for GET /v1/sys/health.
	Ready func() bool
	// MaxPlaintext bounds one plaintext, at most MaxMaxPlaintext.
	// Default: DefaultMaxPlaintext.
	MaxPlaintext int
	// ReadTimeout and WriteTimeout bound one request (see
	// DefaultReadTimeout); 0 means the default.
	ReadTimeout, WriteTimeout time.Duration
	// Metrics, when set, is served at /metrics.
	Metrics prometheus.Gatherer
	Logger  hclog.Logger
}

// Server is the API server.
type Server struct {
	cfg      Config
	svc      *service
	grpcOpts []grpc.ServerOption
	handler  http.Handler
	logger   hclog.Logger

	mu         sync.Mutex
	http       *http.Server // set by Serve
	nativeGRPC *grpc.Server // set by ServeGRPC
	closed     bool         // set by Shutdown
}

// New builds a server. It listens on nothing until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Keys == nil || cfg.Tokens == nil || cfg.Authn == nil || cfg.Status == nil || cfg.Ready == nil {
		return nil, errors.New("new server: keys, tokens, authenticator, status and ready are required")
	}
	switch {
	case cfg.MaxPlaintext == 0:
		cfg.MaxPlaintext = DefaultMaxPlaintext
	case cfg.MaxPlaintext < 0 || cfg.MaxPlaintext > MaxMaxPlaintext:
		return nil, fmt.Errorf("new server: max plaintext %d: want 1 to %d", cfg.MaxPlaintext, MaxMaxPlaintext)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	maxRequest := maxRequestBytes(cfg.MaxPlaintext)
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	logger := cfg.Logger.Named("api")

	svc := &service{
		keys:         cfg.Keys,
		tokens:       cfg.Tokens,
		authn:        cfg.Authn,
		audit:        cfg.Audit,
		status:       cfg.Status,
		maxPlaintext: cfg.MaxPlaintext,
		logger:       logger,
	}

	grpcOpts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRequest),
		grpc.ChainUnaryInterceptor(recoverUnary(logger)),
	}
	gs := grpc.NewServer(grpcOpts...)
	apiv1.RegisterBrokerServer(gs, svc)

	gw := runtime.NewServeMux(
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithErrorHandler(jsonErrorHandler),
		jsonMarshaler(),
	)
	if err := apiv1.RegisterBrokerHandlerServer(context.Background(), gw, svc); err != nil {
		return nil, fmt.Errorf("new server: register gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sys/health", healthHandler(cfg.Ready))
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", svc.requireHTTP(auth.OpMetrics, promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{})))
	}
	mux.Handle("/", recoverHTTP(logger, jsonRequests(int64(maxRequest), gw)))

	s := &Server{cfg: cfg, svc: svc, grpcOpts: grpcOpts, logger: logger}
	// gRPC shares net/http's HTTP/2 server with the JSON API. grpc-go's
	// own transport is faster (BENCHMARKS.md), but splitting one listener
	// between the two breaks HTTP/2 JSON clients or gRPC clients that wait
	// for the server's SETTINGS, so the split is not made; ServeGRPC
	// serves gRPC alone on a listener of its own instead.
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	return s, nil
}

// Serve accepts connections on ln until Shutdown. With tlsConfig nil it
// speaks plain HTTP/1.1 and HTTP/2 without TLS (h2c prior knowledge), which
// gRPC clients use with insecure credentials.
func (s *Server) Serve(ln net.Listener, tlsConfig *tls.Config) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	if tlsConfig == nil {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           s.handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConfig,
		ErrorLog:          s.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	if !s.adopt(func() { s.http = srv }) {
		return nil
	}

	s.logger.Info("serving API", "address", ln.Addr().String(), "tls", tlsConfig != nil)
	var err error
	if tlsConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeGRPC serves the gRPC API alone on ln, on grpc-go's own HTTP/2
// transport, until Shutdown: the same service, authentication and limits
// as Serve, without the JSON API, health or metrics, at a lower cost per
// call. With tlsConfig nil it speaks HTTP/2 without TLS. The certificate
// comes from tlsConfig on every handshake, so a GetCertificate that
// reloads applies here too.
func (s *Server) ServeGRPC(ln net.Listener, tlsConfig *tls.Config) error {
	opts := slices.Clone(s.grpcOpts)
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	gs := grpc.NewServer(opts...)
	apiv1.RegisterBrokerServer(gs, s.svc)
	if !s.adopt(func() { s.nativeGRPC = gs }) {
		return nil
	}

	s.logger.Info("serving gRPC API", "address", ln.Addr().String(), "tls", tlsConfig != nil)
	if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// adopt runs set, which records a server about to serve, unless Shutdown
// has run already; it reports whether it did.
func (s *Server) adopt(set func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	set()
	return true
}

// Shutdown stops accepting connections and waits for calls in flight until
// ctx ends; gRPC calls still running then are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	srv, gs := s.http, s.nativeGRPC
	s.mu.Unlock()
	if gs != nil {
		stopped := make(chan struct{})
		go func() {
			gs.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			gs.Stop()
		}
	}
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// requireHTTP guards a plain HTTP handler with the same bearer check as
// the API; the metrics name blocks and scopes' counts, so they are not
// public.
func (s *service) requireHTTP(op auth.Operation, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := metadata.NewIncomingContext(r.Context(), metadata.Pairs("authorization", r.Header.Get("Authorization")))
		if _, err := s.authorize(ctx, op, ""); err != nil {
			st := status.Convert(err)
			code := http.StatusForbidden
			if st.Code() == codes.Unauthenticated {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", bearerChallenge)
			}
			http.Error(w, st.Message(), code)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// routingError answers a request that matches no route with 404, or 405
// when the path exists for another method. The gateway's default maps 405
// to gRPC UNIMPLEMENTED and so to 501, a server error for a client's
// mistake.
func routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	code := codes.NotFound
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	default:
		httpStatus = http.StatusNotFound
	}
	writeJSONError(w, httpStatus, code, http.StatusText(httpStatus))
}

// healthHandler answers GET /v1/sys/health without authentication: 200
// when ready, 503 when not. It reveals nothing but readiness.
func healthHandler(ready func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		ok := ready()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(struct {
			Ready bool `json:"ready"`
		}{ok})
	}
}

// recoverHTTP is recoverUnary for the JSON API, whose gateway calls the
// service directly: a panic answers 500 instead of dropping the
// connection. The panic value is logged, never the request.
func recoverHTTP(logger hclog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeJSONError(w, http.StatusInternalServerError, codes.Internal, "internal error; see the broker log")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// recoverUnary turns a panic in a handler into an internal error, so one
// bad request cannot take the broker down.
func recoverUnary(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(r))
				err = status.Error(codes.Internal, "internal error; see the broker log")
			}
		}()
		return handler(ctx, req)
	}
}
