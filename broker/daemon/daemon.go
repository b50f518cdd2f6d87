// Package daemon assembles a running broker from a config: it starts one
// plugin per KMS block, routes the external purposes to them, opens the
// store and the keyring, and serves the API.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kmsbroker/kmsbroker/broker/audit"
	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/config"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	"github.com/kmsbroker/kmsbroker/broker/pluginhost"
	"github.com/kmsbroker/kmsbroker/broker/purpose"
	"github.com/kmsbroker/kmsbroker/broker/server"
	"github.com/kmsbroker/kmsbroker/broker/store"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// Version is the broker's version, set at build time.
var Version = "0.1.0-dev"

// stopTimeout bounds a graceful shutdown before connections are cut.
const stopTimeout = 10 * time.Second

// Daemon is a running broker.
type Daemon struct {
	cfg      *config.Config
	logger   hclog.Logger
	blocks   map[string]*block // by block name
	router   *purpose.Router
	store    store.Store
	keys     *keyring.Keyring
	tokens   *auth.Tokens
	audit    *audit.Log
	server   *server.Server
	listener net.Listener
	// grpcListener serves gRPC alone; nil without grpc_address.
	grpcListener net.Listener
	registry     *prometheus.Registry
	serveErr     chan error
	stopOnce     sync.Once
	// rootOK is whether the root KMS last answered a probe; readiness
	// needs it.
	rootOK atomic.Bool
	// stopping ends background loops.
	stopping chan struct{}
	// reload is what Reload changes outside the kms blocks.
	reload reloadState
}

// Start brings up a broker from cfg, which must have passed validation
// with root required. On error everything already started is stopped.
func Start(ctx context.Context, cfg *config.Config, logger hclog.Logger) (*Daemon, error) {
	return StartWith(ctx, cfg, logger, nil)
}

// StartWith is Start with a prepare step that runs once the store and the
// keyring are open and before the API serves a request. Dev mode creates
// its scope and admin token there, so a client that sees the broker ready
// already finds them.
func StartWith(ctx context.Context, cfg *config.Config, logger hclog.Logger, prepare func(context.Context, *Daemon) error) (_ *Daemon, err error) {
	d := &Daemon{
		cfg:      cfg,
		logger:   logger,
		blocks:   make(map[string]*block),
		serveErr: make(chan error, 2), // the API and the gRPC-only listener
		stopping: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			d.Stop(context.Background())
		}
	}()

	d.registry = prometheus.NewRegistry()
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := d.startPlugins(ctx); err != nil {
		return nil, err
	}
	wrappers := make(map[purpose.Purpose]purpose.Wrapper)
	for _, blk := range cfg.KMS {
		for _, p := range blk.Purposes {
			wrappers[p] = d.blocks[blk.Name]
		}
	}
	d.router = purpose.NewRouter(wrappers, pluginhost.Retryable)

	st, err := d.openStore(ctx)
	if err != nil {
		return nil, err
	}
	d.store = st
	d.keys = keyring.New(st, d.router, keyring.Options{CacheSize: cfg.CacheSize, Registerer: d.registry}, logger)
	d.tokens = auth.NewTokens(st)

	d.probeRoot(ctx)

	if cfg.Audit.Path != "" {
		if d.audit, err = audit.Open(cfg.Audit.Path); err != nil {
			return nil, err
		}
		logger.Info("writing audit log", "path", cfg.Audit.Path)
	}

	srv, err := server.New(server.Config{
		Keys:   d.keys,
		Tokens: d.tokens,
		Authn: &auth.Authenticator{
			Tokens: d.tokens,
			OneTime: &auth.OneTimeVerifier{
				KMS:          d.router,
				Nonces:       st,
				Validity:     cfg.Auth.OneTimeTokenValidity,
				WorkerScopes: cfg.Auth.WorkerScopes,
			},
			Audit:  d.audit,
			Logger: logger,
		},
		Audit:        d.audit,
		Status:       d.status,
		Ready:        d.ready,
		MaxPlaintext: cfg.Listener.MaxPlaintextBytes,
		Metrics:      d.registry,
		Logger:       logger,
	})
	if err != nil {
		return nil, err
	}
	d.server = srv

	if prepare != nil {
		if err := prepare(ctx, d); err != nil {
			return nil, err
		}
	}

	tlsConfig, err := d.listenerTLS(cfg.Listener)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listener.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listener.Address, err)
	}
	d.listener = ln
	if addr := cfg.Listener.GRPCAddress; addr != "" {
		gln, err := net.Listen("tcp", addr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on grpc_address %s: %w", addr, err)
		}
		d.grpcListener = gln
		go func() {
			if err := srv.ServeGRPC(gln, tlsConfig); err != nil {
				d.serveErr <- fmt.Errorf("serve gRPC on %s: %w", addr, err)
			}
		}()
	}
	go func() { d.serveErr <- srv.Serve(ln, tlsConfig) }()

	logger.Info("broker started", "address", ln.Addr().String(), "storage", cfg.Storage.Type, "version", Version)
	return d, nil
}

// startPlugins starts every KMS block's plugin at once, so start-up time
// is that of the slowest plugin, not the sum. Only a start failure that
// retrying cannot fix stops the broker; see startBlock.
func (d *Daemon) startPlugins(ctx context.Context) error {
	type started struct {
		name string
		b    *block
		err  error
	}
	results := make(chan started, len(d.cfg.KMS))
	for _, blk := range d.cfg.KMS {
		go func() {
			pc := pluginhost.BlockConfig(blk, d.cfg.Plugins.Directory, d.logger)
			pc.Registerer = d.registry
			b, err := startBlock(ctx, blk, pc, d.logger)
			results <- started{blk.Name, b, err}
		}()
	}
	var errs []error
	for range d.cfg.KMS {
		r := <-results
		if r.err != nil {
			errs = append(errs, fmt.Errorf("start kms block %s: %w", r.name, r.err))
			continue
		}
		d.blocks[r.name] = r.b
		if info := r.b.Info(); info.Pid != 0 {
			d.logger.Info("kms block ready", r.b.effective()...)
		}
	}
	return errors.Join(errs...)
}

// defaultSQLitePath is used when the config has no storage block.
const defaultSQLitePath = "brokerd.db"

func (d *Daemon) openStore(ctx context.Context) (store.Store, error) {
	s := d.cfg.Storage
	if s.Type == store.KindPostgres {
		return store.Open(ctx, store.KindPostgres, s.URL)
	}
	path := s.Path
	if path == "" {
		path = defaultSQLitePath
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	d.logger.Info("opening store", "storage", store.KindSQLite, "path", path)
	return store.Open(ctx, store.KindSQLite, path)
}

// listenerTLS serves the listener's certificate through GetCertificate,
// so that Reload can replace it.
func (d *Daemon) listenerTLS(l config.Listener) (*tls.Config, error) {
	if l.TLSDisable {
		return nil, nil
	}
	if _, err := d.reload.loadCertificate(l); err != nil {
		return nil, fmt.Errorf("listener tls: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: d.reload.certificate}, nil
}

// Addr is the address the API listens on.
func (d *Daemon) Addr() net.Addr { return d.listener.Addr() }

// GRPCAddr is the address of the gRPC-only listener, or nil without one.
func (d *Daemon) GRPCAddr() net.Addr {
	if d.grpcListener == nil {
		return nil
	}
	return d.grpcListener.Addr()
}

// Keyring is the broker's keyring.
func (d *Daemon) Keyring() *keyring.Keyring { return d.keys }

// MintToken creates a client token and returns its secret; see
// auth.Tokens.Create.
func (d *Daemon) MintToken(ctx context.Context, secret, name string, role auth.Role, scopes []string, ttl time.Duration) (string, error) {
	secret, tok, err := d.tokens.Create(ctx, secret, name, role, scopes, ttl)
	if err != nil {
		return "", err
	}
	d.logger.Info("token created", "token_id", tok.ID, "name", name, "role", string(role))
	return secret, nil
}

// Done delivers the API server's error if it stops on its own.
func (d *Daemon) Done() <-chan error { return d.serveErr }

// Stop shuts the API down, then the keyring, the store and every plugin.
// It is safe to call more than once.
func (d *Daemon) Stop(ctx context.Context) {
	d.stopOnce.Do(func() {
		close(d.stopping)
		ctx, cancel := context.WithTimeout(ctx, stopTimeout)
		defer cancel()
		if d.server != nil {
			if err := d.server.Shutdown(ctx); err != nil {
				d.logger.Warn("API shutdown", "error", err)
			}
		}
		if d.keys != nil {
			d.keys.Close()
		}
		if d.store != nil {
			if err := d.store.Close(); err != nil {
				d.logger.Warn("close store", "error", err)
			}
		}
		for _, b := range d.blocks {
			b.Stop()
		}
		if err := d.audit.Close(); err != nil {
			d.logger.Warn("close audit log", "error", err)
		}
		d.logger.Info("broker stopped")
	})
}

// ready is true while the root purpose's plugin is ready.
func (d *Daemon) ready() bool {
	blk := d.cfg.Block(purpose.Root)
	if blk == nil {
		return false
	}
	b, ok := d.blocks[blk.Name]
	return ok && d.rootOK.Load() && b.Info().State == pluginhost.StateReady
}

func (d *Daemon) status(ctx context.Context) *apiv1.StatusResponse {
	resp := &apiv1.StatusResponse{Version: Version, Ready: d.ready()}
	for _, blk := range d.cfg.KMS {
		info := d.blocks[blk.Name].Info()
		for _, pur := range blk.Purposes {
			resp.Purposes = append(resp.Purposes, &apiv1.PurposeStatus{
				Purpose:    string(pur),
				Block:      blk.Name,
				PluginType: info.Type,
				Pid:        int32(info.Pid),
				State:      info.State,
				KeyId:      info.KeyID,
				LastError:  info.LastError,
				Restarts:   uint32(info.Restarts),
			})
		}
	}
	order := make(map[string]int)
	for i, p := range purpose.All() {
		order[string(p)] = i
	}
	sort.SliceStable(resp.Purposes, func(i, j int) bool {
		return order[resp.Purposes[i].Purpose] < order[resp.Purposes[j].Purpose]
	})

	resp.RootKeys = &apiv1.RootKeyStatus{}
	if rk, err := d.keys.RootKeyStatus(ctx); err != nil {
		resp.RootKeys.Error = "root key status unavailable"
		d.logger.Warn("root key status", "error", err)
	} else {
		resp.RootKeys.CurrentKeyId = rk.CurrentKeyID
		resp.RootKeys.OnOtherKeys = uint32(rk.OnOtherKeys)
		if d.previousRootSameKeyID(rk.CurrentKeyID) {
			resp.RootKeys.Error = errSameRootKeyID.Error()
		}
		resp.RootKeys.KeyVersions = make(map[string]uint32, len(rk.KeyVersions))
		for id, n := range rk.KeyVersions {
			resp.RootKeys.KeyVersions[id] = uint32(n)
		}
	}

	resp.Store = &apiv1.StoreStatus{Type: d.cfg.Storage.Type, Ok: true}
	if err := d.store.Ping(ctx); err != nil {
		resp.Store.Ok = false
		resp.Store.Error = "store unreachable"
		d.logger.Warn("store ping failed", "error", err)
	}
	return resp
}

// errSameRootKeyID is reported when root and previous-root name the same
// key: the counts by key id then cannot show what still depends on
// previous-root, and on_other_keys reading 0 would wrongly say it can go.
var errSameRootKeyID = errors.New("root and previous-root report the same key id, " +
	"so the counts cannot tell which KEK versions still need previous-root; give the two keys distinct key ids")

// previousRootSameKeyID reports whether a ready previous-root block
// reports current, the key id the root purpose wraps with.
func (d *Daemon) previousRootSameKeyID(current string) bool {
	blk := d.cfg.Block(purpose.PreviousRoot)
	if blk == nil {
		return false
	}
	b, ok := d.blocks[blk.Name]
	if !ok {
		return false
	}
	info := b.Info()
	return info.State == pluginhost.StateReady && info.KeyID == current
}

// rootProbeInterval is how often a failed root KMS is probed again. Each
// probe is one real KMS encrypt and decrypt, made only while root fails.
const rootProbeInterval = 5 * time.Second

// probeRoot checks the root KMS once; while it fails, it keeps probing in
// the background so readiness returns when the KMS does. The broker stays
// up meanwhile: health answers 503 and status shows the root block's
// error.
func (d *Daemon) probeRoot(ctx context.Context) {
	if d.tryProbe(ctx) {
		return
	}
	go func() {
		t := time.NewTicker(rootProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-d.stopping:
				return
			case <-t.C:
				if d.tryProbe(context.Background()) {
					d.logger.Info("root KMS answers again", "purpose", "root")
					return
				}
			}
		}
	}()
}

func (d *Daemon) tryProbe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, rootProbeTimeout)
	defer cancel()
	err := d.router.ProbeRoot(ctx)
	d.rootOK.Store(err == nil)
	if err != nil {
		d.logger.Error("root KMS probe failed", "purpose", "root", "error", err)
		return false
	}
	if id, err := d.router.RootKeyID(ctx); err == nil && d.previousRootSameKeyID(id) {
		d.logger.Warn("root key status unreliable", "purpose", "previous-root", "key_id", id, "error", errSameRootKeyID)
	}
	return true
}

// rootProbeTimeout bounds one probe: a wrap and an unwrap.
const rootProbeTimeout = 30 * time.Second
