package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kmsbroker/kmsbroker/broker/audit"
	"github.com/kmsbroker/kmsbroker/broker/auth"
	"github.com/kmsbroker/kmsbroker/broker/keyring"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

// maxTokenTTLSeconds bounds a client token's lifetime: ten years is longer
// than any credential should live, and keeps the lifetime far inside what
// a time.Duration holds.
const maxTokenTTLSeconds = 10 * 365 * 24 * 60 * 60

// record writes an audit event for a security-relevant call; err nil is
// success.
func (s *service) record(p auth.Principal, op auth.Operation, scope string, version uint32, target string, err error) {
	e := audit.Event{Principal: p.ID, Operation: string(op), Scope: scope, KeyVersion: version, Target: target, Result: audit.ResultOK}
	if err != nil {
		e.Result = audit.ResultError
		if c := status.Code(err); c == codes.InvalidArgument || c == codes.FailedPrecondition || c == codes.NotFound || c == codes.PermissionDenied {
			e.Result = audit.ResultRejected
		}
		e.Reason = status.Convert(err).Message()
	}
	if werr := s.audit.Record(e); werr != nil {
		s.logger.Error("audit write failed", "operation", string(op), "error", werr)
	}
}

func (s *service) ReEncrypt(ctx context.Context, req *apiv1.ReEncryptRequest) (*apiv1.ReEncryptResponse, error) {
	if _, err := s.authorize(ctx, auth.OpReEncrypt, req.GetScopeId()); err != nil {
		return nil, err
	}
	p, err := keyring.ParseDataPurpose(req.GetPurpose())
	if err != nil {
		return nil, s.fail(err)
	}
	env, version, err := s.keys.ReEncrypt(ctx, req.GetScopeId(), p, req.GetCiphertext(), req.GetAad())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.ReEncryptResponse{Ciphertext: env, KeyVersion: version}, nil
}

func (s *service) DeriveKey(ctx context.Context, req *apiv1.DeriveKeyRequest) (*apiv1.DeriveKeyResponse, error) {
	if _, err := s.authorize(ctx, auth.OpDeriveKey, req.GetScopeId()); err != nil {
		return nil, err
	}
	length := int(req.GetLength())
	if length == 0 {
		length = keyring.DefaultDerivedKeyLen
	}
	key, version, err := s.keys.DeriveKey(ctx, req.GetScopeId(), req.GetUserId(), req.GetSessionId(), length, req.GetKeyVersion())
	if err != nil {
		return nil, s.fail(err)
	}
	return &apiv1.DeriveKeyResponse{Key: key, KeyVersion: version}, nil
}

func (s *service) RotateKeys(ctx context.Context, req *apiv1.RotateKeysRequest) (*apiv1.RotateKeysResponse, error) {
	p, err := s.authorize(ctx, auth.OpRotateKeys, req.GetScopeId())
	if err != nil {
		return nil, err
	}
	info, err := s.keys.RotateKeys(ctx, req.GetScopeId(), req.GetRewrap())
	if err != nil {
		err = s.fail(err)
	}
	s.record(p, auth.OpRotateKeys, req.GetScopeId(), info.RootKeyVersion, "", err)
	if err != nil {
		return nil, err
	}
	return &apiv1.RotateKeysResponse{Scope: scopeProto(info)}, nil
}

func (s *service) RewrapKeys(ctx context.Context, req *apiv1.RewrapKeysRequest) (*apiv1.RewrapKeysResponse, error) {
	scope := req.GetScopeId()
	p, err := s.authorize(ctx, auth.OpRewrapKeys, scope)
	if err != nil {
		return nil, err
	}
	if (scope == "") == !req.GetAll() {
		return nil, status.Error(codes.InvalidArgument, "give either a scope id or all=true")
	}
	var res keyring.RewrapResult
	if req.GetAll() {
		res, err = s.keys.RewrapAll(ctx)
	} else {
		res, err = s.keys.RewrapKeys(ctx, scope)
	}
	if err != nil {
		err = s.fail(err)
	}
	target := ""
	if req.GetAll() {
		target = "all scopes"
	}
	s.record(p, auth.OpRewrapKeys, scope, res.KeyVersion, target, err)
	if err != nil {
		return nil, err
	}
	return &apiv1.RewrapKeysResponse{Scopes: uint32(res.Scopes), RootKeyVersions: uint32(res.RootKeyVersions)}, nil
}

func (s *service) ListKeyVersions(ctx context.Context, req *apiv1.ListKeyVersionsRequest) (*apiv1.ListKeyVersionsResponse, error) {
	if _, err := s.authorize(ctx, auth.OpListKeyVersions, req.GetScopeId()); err != nil {
		return nil, err
	}
	versions, err := s.keys.KeyVersions(ctx, req.GetScopeId())
	if err != nil {
		return nil, s.fail(err)
	}
	resp := &apiv1.ListKeyVersionsResponse{Versions: make([]*apiv1.KeyVersion, 0, len(versions))}
	for _, v := range versions {
		kind := string(v.Kind)
		if v.Kind == keyring.DataKey {
			kind = string(v.Purpose)
		}
		resp.Versions = append(resp.Versions, &apiv1.KeyVersion{
			Id:             v.ID,
			Kind:           kind,
			Version:        v.Version,
			RootKeyVersion: v.RootKeyVersion,
			WrappingKeyId:  v.WrappingKeyID,
			CreateTime:     timestamp(v.CreateTime),
			DestroyTime:    timestamp(v.DestroyTime),
			Active:         v.Active,
		})
	}
	return resp, nil
}

func (s *service) DestroyKeyVersion(ctx context.Context, req *apiv1.DestroyKeyVersionRequest) (*apiv1.DestroyKeyVersionResponse, error) {
	p, err := s.authorize(ctx, auth.OpDestroyKeyVersion, req.GetScopeId())
	if err != nil {
		return nil, err
	}
	if req.GetVersionId() == "" {
		return nil, status.Error(codes.InvalidArgument, "version_id is required")
	}
	version, err := s.keys.DestroyKeyVersion(ctx, req.GetScopeId(), req.GetVersionId())
	if err != nil {
		err = s.fail(err)
	}
	s.record(p, auth.OpDestroyKeyVersion, req.GetScopeId(), version, req.GetVersionId(), err)
	if err != nil {
		return nil, err
	}
	return &apiv1.DestroyKeyVersionResponse{}, nil
}

func (s *service) CreateToken(ctx context.Context, req *apiv1.CreateTokenRequest) (*apiv1.CreateTokenResponse, error) {
	p, err := s.authorize(ctx, auth.OpCreateToken, "")
	if err != nil {
		return nil, err
	}
	if req.GetTtlSeconds() < 0 || req.GetTtlSeconds() > maxTokenTTLSeconds {
		return nil, status.Errorf(codes.InvalidArgument, "ttl_seconds %d: want 0 (never expires) to %d",
			req.GetTtlSeconds(), int64(maxTokenTTLSeconds))
	}
	var (
		secret string
		tok    auth.TokenInfo
	)
	// A token limited to a scope that does not exist would be refused
	// everywhere; a typo in a scope list is caught here instead.
	for _, id := range req.GetScopes() {
		if _, err = s.keys.Scope(ctx, id); err != nil {
			err = fmt.Errorf("create token: limit to scope %q: %w", id, err)
			break
		}
	}
	if err == nil {
		ttl := time.Duration(req.GetTtlSeconds()) * time.Second
		secret, tok, err = s.tokens.Create(ctx, "", req.GetName(), auth.Role(req.GetRole()), req.GetScopes(), ttl)
	}
	if err != nil {
		err = s.fail(err)
	}
	s.record(p, auth.OpCreateToken, "", 0, tok.ID, err)
	if err != nil {
		return nil, err
	}
	return &apiv1.CreateTokenResponse{Token: tokenProto(tok), Secret: secret}, nil
}

func (s *service) ListTokens(ctx context.Context, _ *apiv1.ListTokensRequest) (*apiv1.ListTokensResponse, error) {
	if _, err := s.authorize(ctx, auth.OpListTokens, ""); err != nil {
		return nil, err
	}
	toks, err := s.tokens.List(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	resp := &apiv1.ListTokensResponse{Tokens: make([]*apiv1.Token, 0, len(toks))}
	for _, t := range toks {
		resp.Tokens = append(resp.Tokens, tokenProto(t))
	}
	return resp, nil
}

func (s *service) RevokeToken(ctx context.Context, req *apiv1.RevokeTokenRequest) (*apiv1.RevokeTokenResponse, error) {
	p, err := s.authorize(ctx, auth.OpRevokeToken, "")
	if err != nil {
		return nil, err
	}
	err = s.tokens.Revoke(ctx, req.GetId())
	if err != nil {
		err = s.fail(err)
	}
	s.record(p, auth.OpRevokeToken, "", 0, req.GetId(), err)
	if err != nil {
		return nil, err
	}
	return &apiv1.RevokeTokenResponse{}, nil
}

func tokenProto(t auth.TokenInfo) *apiv1.Token {
	return &apiv1.Token{
		Id:         t.ID,
		Name:       t.Name,
		Role:       string(t.Role),
		Scopes:     t.Scopes,
		CreateTime: timestamp(t.CreateTime),
		ExpireTime: timestamp(t.ExpireTime),
		RevokeTime: timestamp(t.RevokeTime),
	}
}

// timestamp leaves zero times unset rather than 1970.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
