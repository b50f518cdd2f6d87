package server

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kmsbroker/kmsbroker/broker/audit"
	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// Keys is the part of the keyring the API serves.
type Keys interface {
	CreateScope(ctx context.Context, id, name string) (keyring.ScopeInfo, error)
	Scope(ctx context.Context, id string) (keyring.ScopeInfo, error)
	ListScopes(ctx context.Context) ([]keyring.ScopeInfo, error)
	Encrypt(ctx context.Context, scopeID string, p keyring.DataPurpose, plaintext, aad []byte) ([]byte, uint32, error)
	Decrypt(ctx context.Context, scopeID string, p keyring.DataPurpose, envelope, aad []byte) ([]byte, uint32, error)
	ReEncrypt(ctx context.Context, scopeID string, p keyring.DataPurpose, envelope, aad []byte) ([]byte, uint32, error)
	DeriveKey(ctx context.Context, scopeID, user, session string, length int, version uint32) ([]byte, uint32, error)
	RotateKeys(ctx context.Context, scopeID string, rewrap bool) (keyring.ScopeInfo, error)
	RewrapKeys(ctx context.Context, scopeID string) (keyring.RewrapResult, error)
	RewrapAll(ctx context.Context) (keyring.RewrapResult, error)
	KeyVersions(ctx context.Context, scopeID string) ([]keyring.KeyVersion, error)
	DestroyKeyVersion(ctx context.Context, scopeID, versionID string) (uint32, error)
}

// Tokens manages client tokens.
type Tokens interface {
	Create(ctx context.Context, secret, name string, role auth.Role, scopes []string, ttl time.Duration) (string, auth.TokenInfo, error)
	List(ctx context.Context) ([]auth.TokenInfo, error)
	Revoke(ctx context.Context, id string) error
}

var _ Tokens = (*auth.Tokens)(nil)

var _ Keys = (*keyring.Keyring)(nil)

// Authenticator turns a bearer credential into a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (auth.Principal, error)
}

// service implements the Broker API. Both transports reach it: gRPC through
// the grpc.Server, HTTP/JSON through the gateway, which calls these methods
// directly. Authorization therefore lives here, in authorize, and not in a
// gRPC interceptor that the gateway would bypass.
type service struct {
	apiv1.UnimplementedBrokerServer

	keys         Keys
	tokens       Tokens
	authn        Authenticator
	audit        *audit.Log
	status       func(context.Context) *apiv1.StatusResponse
	maxPlaintext int
	logger       hclog.Logger
}

var _ apiv1.BrokerServer = (*service)(nil)

// authorize authenticates the caller from the request's authorization
// metadata and checks that it may perform op in scope.
func (s *service) authorize(ctx context.Context, op auth.Operation, scope string) (auth.Principal, error) {
	credential, given, ok := bearer(ctx)
	switch {
	case !ok && given:
		return auth.Principal{}, status.Error(codes.Unauthenticated,
			"the authorization is not a bearer credential: send \"Authorization: Bearer <token>\"")
	case !ok:
		return auth.Principal{}, status.Error(codes.Unauthenticated,
			"missing credential: send \"Authorization: Bearer <token>\"")
	}
	p, err := s.authn.Authenticate(ctx, credential)
	if err != nil {
		return auth.Principal{}, s.fail(err)
	}
	if err := auth.Authorize(p, op, scope); err != nil {
		return auth.Principal{}, s.fail(err)
	}
	return p, nil
}

// bearer returns the bearer credential of an incoming call. The gateway
// forwards the HTTP Authorization header as "authorization" metadata.
// given reports whether any authorization was sent at all.
func bearer(ctx context.Context) (credential string, given, ok bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if v != "" {
			given = true
		}
		scheme, cred, found := strings.Cut(v, " ")
		if found && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(cred) != "" {
			return strings.TrimSpace(cred), true, true
		}
	}
	return "", given, false
}

func (s *service) CreateScope(ctx context.Context, req *apiv1.CreateScopeRequest) (*apiv1.CreateScopeResponse, error) {
	if _, err := s.authorize(ctx, auth.OpCreateScope, ""); err != nil {
		return nil, err
	}
	info, err := s.keys.CreateScope(ctx, req.GetId(), req.GetName())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.CreateScopeResponse{Scope: scopeProto(info)}, nil
}

func (s *service) GetScope(ctx context.Context, req *apiv1.GetScopeRequest) (*apiv1.GetScopeResponse, error) {
	if _, err := s.authorize(ctx, auth.OpReadScope, req.GetId()); err != nil {
		return nil, err
	}
	info, err := s.keys.Scope(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.GetScopeResponse{Scope: scopeProto(info)}, nil
}

func (s *service) ListScopes(ctx context.Context, _ *apiv1.ListScopesRequest) (*apiv1.ListScopesResponse, error) {
	if _, err := s.authorize(ctx, auth.OpListScopes, ""); err != nil {
		return nil, err
	}
	infos, err := s.keys.ListScopes(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	resp := &apiv1.ListScopesResponse{Scopes: make([]*apiv1.Scope, 0, len(infos))}
	for _, info := range infos {
		resp.Scopes = append(resp.Scopes, scopeProto(info))
	}
	return resp, nil
}

func (s *service) Encrypt(ctx context.Context, req *apiv1.EncryptRequest) (*apiv1.EncryptResponse, error) {
	if _, err := s.authorize(ctx, auth.OpEncrypt, req.GetScopeId()); err != nil {
		return nil, err
	}
	p, err := keyring.ParseDataPurpose(req.GetPurpose())
	if err != nil {
		return nil, s.fail(err)
	}
	if n := len(req.GetPlaintext()); n > s.maxPlaintext {
		return nil, status.Errorf(codes.InvalidArgument,
			"plaintext is %d bytes, over the limit of %d", n, s.maxPlaintext)
	}
	env, version, err := s.keys.Encrypt(ctx, req.GetScopeId(), p, req.GetPlaintext(), req.GetAad())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.EncryptResponse{Ciphertext: env, KeyVersion: version}, nil
}

func (s *service) Decrypt(ctx context.Context, req *apiv1.DecryptRequest) (*apiv1.DecryptResponse, error) {
	if _, err := s.authorize(ctx, auth.OpDecrypt, req.GetScopeId()); err != nil {
		return nil, err
	}
	p, err := keyring.ParseDataPurpose(req.GetPurpose())
	if err != nil {
		return nil, s.fail(err)
	}
	plaintext, version, err := s.keys.Decrypt(ctx, req.GetScopeId(), p, req.GetCiphertext(), req.GetAad())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.DecryptResponse{Plaintext: plaintext, KeyVersion: version}, nil
}

func (s *service) Status(ctx context.Context, _ *apiv1.StatusRequest) (*apiv1.StatusResponse, error) {
	if _, err := s.authorize(ctx, auth.OpStatus, ""); err != nil {
		return nil, err
	}
	return s.status(ctx), nil
}

func scopeProto(info keyring.ScopeInfo) *apiv1.Scope {
	sc := &apiv1.Scope{
		Id:             info.ID,
		Name:           info.Name,
		CreateTime:     timestamppb.New(info.CreateTime),
		RootKeyVersion: info.RootKeyVersion,
	}
	for _, p := range keyring.DataPurposes() {
		if v, ok := info.DataKeys[p]; ok {
			sc.DataKeys = append(sc.DataKeys, &apiv1.DataKey{Purpose: string(p), Version: v})
		}
	}
	return sc
}
