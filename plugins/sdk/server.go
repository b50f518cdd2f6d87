package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// KeyIDSetting is the setting whose value, when a plugin declares it, is
// passed to the wrapper as wrapping.WithKeyId (a ConfigureRequest key_id
// wins over it).
const KeyIDSetting = "key_id"

// server serves one wrapper over the plugin protocol. Configure takes the
// write lock; every other call takes the read lock, so a wrapper is never
// used while it is being configured.
type server struct {
	pluginv1.UnimplementedWrapperServer

	w     wrapping.Wrapper
	opts  options
	specs map[string]Setting
	log   hclog.Logger

	mu         sync.RWMutex
	configured bool
	scrub      *strings.Replacer
}

// NewServer returns the plugin-protocol server for w. Serve uses it; tests
// use it to exercise a wrapper in-process. A nil logger discards logs.
//
// Every method recovers from a panic in the wrapper and returns
// codes.Internal instead, so that bad input never takes the plugin down.
func NewServer(w wrapping.Wrapper, logger hclog.Logger, opt ...Option) pluginv1.WrapperServer {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &server{
		w:     w,
		specs: make(map[string]Setting),
		log:   logger,
		scrub: strings.NewReplacer(),
	}
	for _, o := range opt {
		o(&s.opts)
	}
	for _, spec := range s.opts.settings {
		s.specs[spec.Name] = spec
	}
	return s
}

// Describe reports the wrapper type, key id, capabilities and settings. It
// never contacts the KMS.
func (s *server) Describe(ctx context.Context, _ *pluginv1.DescribeRequest) (resp *pluginv1.DescribeResponse, err error) {
	defer s.recoverTo("describe", &err)
	s.mu.RLock()
	defer s.mu.RUnlock()

	typ, err := s.w.Type(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "describe: wrapper type: %s", s.scrub.Replace(err.Error()))
	}
	var keyID string
	if s.configured {
		if keyID, err = s.w.KeyId(ctx); err != nil {
			return nil, status.Errorf(codes.Internal, "describe: key id: %s", s.scrub.Replace(err.Error()))
		}
	}
	specs := make([]*pluginv1.SettingSpec, 0, len(s.opts.settings))
	for _, spec := range s.opts.settings {
		specs = append(specs, &pluginv1.SettingSpec{
			Name:        spec.Name,
			Secret:      spec.Secret,
			Description: spec.Description,
		})
	}
	return &pluginv1.DescribeResponse{
		Type:            string(typ),
		KeyId:           keyID,
		Capabilities:    &pluginv1.Capabilities{Aad: s.opts.aad},
		PluginVersion:   s.opts.version,
		ProtocolVersion: ProtocolVersion,
		Settings:        specs,
	}, nil
}

// Configure checks the settings against the declared list, runs the
// validator, and calls the wrapper's SetConfig once. A plugin is
// configured at most once; a host that wants other settings starts a new
// process.
func (s *server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (resp *pluginv1.ConfigureResponse, err error) {
	defer s.recoverTo("configure", &err)
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.configured {
		return nil, status.Error(codes.FailedPrecondition, "configure: plugin is already configured; start a new process to change settings")
	}
	settings := make(map[string]string, len(req.GetSettings()))
	for name, value := range req.GetSettings() {
		settings[name] = value
	}
	isSecret := func(name string) bool {
		spec, ok := s.specs[name]
		return !ok || spec.Secret
	}
	scrub := configScrub{
		all:     NewRedactor(settings, isSecret),
		secrets: NewRedactor(secretsOnly(settings, isSecret), isSecret),
	}
	if err := s.checkSettings(settings); err != nil {
		return nil, status.Error(codes.InvalidArgument, "configure: "+scrub.all.Replace(err.Error()))
	}
	if s.opts.validate != nil {
		if err := s.opts.validate(settings); err != nil {
			return nil, configureError(err, scrub)
		}
	}

	keyID := req.GetKeyId()
	if keyID == "" {
		if _, declared := s.specs[KeyIDSetting]; declared {
			keyID = settings[KeyIDSetting]
		}
	}
	wopts := []wrapping.Option{wrapping.WithConfigMap(settings)}
	if keyID != "" {
		wopts = append(wopts, wrapping.WithKeyId(keyID))
	}
	wc, err := s.w.SetConfig(ctx, wopts...)
	if err != nil {
		s.log.Debug("configure rejected", "error", scrub.secrets.Replace(err.Error()))
		return nil, configureError(err, scrub)
	}
	if init, ok := s.w.(wrapping.InitFinalizer); ok {
		if err := init.Init(ctx); err != nil {
			return nil, configureError(err, scrub)
		}
	}
	s.configured = true
	s.scrub = scrub.secrets

	typ, err := s.w.Type(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "configure: wrapper type: %s", scrub.secrets.Replace(err.Error()))
	}
	gotKeyID, err := s.w.KeyId(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "configure: key id: %s", scrub.secrets.Replace(err.Error()))
	}
	s.log.Info("configured", "type", string(typ), "key_id", gotKeyID)
	return &pluginv1.ConfigureResponse{
		Type:     string(typ),
		KeyId:    gotKeyID,
		Metadata: s.publicMetadata(wc, settings),
	}, nil
}

// checkSettings rejects undeclared settings and malformed booleans. Names
// are checked in sorted order so the error is the same on every run.
func (s *server) checkSettings(settings map[string]string) error {
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec, ok := s.specs[name]
		if !ok {
			return &SettingError{Setting: name, Problem: "unknown setting for this plugin"}
		}
		if spec.Bool {
			if _, err := strconv.ParseBool(settings[name]); err != nil {
				return &SettingError{Setting: name, Problem: "must be true or false"}
			}
		}
	}
	return nil
}

// publicMetadata copies the wrapper's metadata, dropping any entry named
// like a secret setting or carrying a secret setting's value.
func (s *server) publicMetadata(wc *wrapping.WrapperConfig, settings map[string]string) map[string]string {
	if wc == nil || len(wc.Metadata) == 0 {
		return nil
	}
	secrets := make(map[string]bool)
	for name, value := range settings {
		if s.specs[name].Secret && value != "" {
			secrets[value] = true
		}
	}
	out := make(map[string]string, len(wc.Metadata))
	for k, v := range wc.Metadata {
		if s.specs[k].Secret || secrets[v] {
			continue
		}
		out[k] = v
	}
	return out
}

// Encrypt wraps the plaintext, binding the AAD when there is one.
func (s *server) Encrypt(ctx context.Context, req *pluginv1.EncryptRequest) (resp *pluginv1.EncryptResponse, err error) {
	defer s.recoverTo("encrypt", &err)
	s.mu.RLock()
	defer s.mu.RUnlock()

	if !s.configured {
		return nil, status.Error(codes.FailedPrecondition, "encrypt: plugin is not configured")
	}
	plaintext := req.GetPlaintext()
	if plaintext == nil {
		// Protobuf decodes an empty field as nil, and several wrappers
		// refuse a nil plaintext; an empty one is valid input.
		plaintext = []byte{}
	}
	blob, err := s.w.Encrypt(ctx, plaintext, aadOption(req.GetAad())...)
	if err != nil {
		return nil, s.opError("encrypt", err, codes.Internal)
	}
	if blob == nil {
		return nil, status.Error(codes.Internal, "encrypt: wrapper returned no blob")
	}
	// The BlobInfo type can carry plaintext; it must never leave the plugin.
	blob.Plaintext = nil
	out, err := proto.Marshal(blob)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encrypt: encode blob: %v", err)
	}
	return &pluginv1.EncryptResponse{BlobInfo: out}, nil
}

// Decrypt unwraps a blob made by Encrypt. Malformed blobs and blobs that
// fail to authenticate return codes.InvalidArgument.
func (s *server) Decrypt(ctx context.Context, req *pluginv1.DecryptRequest) (resp *pluginv1.DecryptResponse, err error) {
	defer s.recoverTo("decrypt", &err)
	s.mu.RLock()
	defer s.mu.RUnlock()

	if !s.configured {
		return nil, status.Error(codes.FailedPrecondition, "decrypt: plugin is not configured")
	}
	if len(req.GetBlobInfo()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "decrypt: empty blob")
	}
	var blob wrapping.BlobInfo
	if err := proto.Unmarshal(req.GetBlobInfo(), &blob); err != nil {
		return nil, status.Error(codes.InvalidArgument, "decrypt: malformed blob")
	}
	if len(blob.Ciphertext) == 0 {
		return nil, status.Error(codes.InvalidArgument, "decrypt: blob has no ciphertext")
	}
	plaintext, err := s.w.Decrypt(ctx, &blob, aadOption(req.GetAad())...)
	if err != nil {
		return nil, s.opError("decrypt", err, codes.InvalidArgument)
	}
	return &pluginv1.DecryptResponse{Plaintext: plaintext}, nil
}

// Health reports whether Configure has succeeded. It never calls the KMS.
func (s *server) Health(context.Context, *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &pluginv1.HealthResponse{Configured: s.configured}, nil
}

// opError turns a wrapper error into a status: Unavailable when the KMS
// could not be reached, otherwise code.
func (s *server) opError(op string, err error, code codes.Code) error {
	msg := s.scrub.Replace(err.Error())
	s.log.Debug(op+" failed", "error", msg)
	if isUnavailable(err) {
		code = codes.Unavailable
	}
	return status.Errorf(code, "%s: %s", op, msg)
}

// recoverTo turns a panic in a wrapper into codes.Internal. The stack goes
// to the plugin's log; the panic value is logged but not returned, since
// only the plugin's own log is sure to stay on the machine.
func (s *server) recoverTo(op string, err *error) {
	if r := recover(); r != nil {
		s.log.Error(op+" panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "%s: wrapper panicked", op)
	}
}

// configScrub holds the two redactors Configure uses: a refusal of the
// settings names settings but quotes no value at all; an unreachable KMS
// may show non-secret values such as the address, which help operators.
type configScrub struct {
	all     *strings.Replacer
	secrets *strings.Replacer
}

// configureError maps a validator or SetConfig error to a status whose
// message names the setting and carries no secret value.
func configureError(err error, scrub configScrub) error {
	if isUnavailable(err) {
		return status.Error(codes.Unavailable, "configure: "+scrub.secrets.Replace(err.Error()))
	}
	var se *SettingError
	if errors.As(err, &se) {
		// The setting's name also travels as a structured detail, so the
		// host can point at the line of the config that holds it.
		code := codes.InvalidArgument
		if se.Refused {
			code = codes.FailedPrecondition
		}
		st := status.New(code, "configure: "+scrub.all.Replace(se.Error()))
		detailed, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: se.Setting, Description: scrub.all.Replace(se.Problem)}}})
		if derr != nil {
			return st.Err()
		}
		return detailed.Err()
	}
	return status.Error(codes.InvalidArgument, "configure: "+scrub.all.Replace(err.Error()))
}

// secretsOnly returns the settings for which secret is true.
func secretsOnly(settings map[string]string, secret func(string) bool) map[string]string {
	out := make(map[string]string)
	for name, value := range settings {
		if secret(name) {
			out[name] = value
		}
	}
	return out
}

// isUnavailable reports whether err means the KMS could not be reached.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrBackendUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func aadOption(aad []byte) []wrapping.Option {
	if len(aad) == 0 {
		return nil
	}
	return []wrapping.Option{wrapping.WithAad(aad)}
}
