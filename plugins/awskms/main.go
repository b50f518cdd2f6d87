// Command kmsbroker-plugin-awskms serves an AWS KMS key (or a key in any
// server that speaks the AWS KMS API) as a kmsbroker wrapper plugin. It
// envelope-encrypts with AES-GCM under a data key from KMS and binds AAD.
//
// Settings are those of go-kms-wrapping's awskms wrapper: kms_key_id,
// region, endpoint, access_key, secret_key, session_token,
// shared_creds_filename, shared_creds_profile, web_identity_token_file,
// role_arn, role_session_name and disallow_env_vars. Unlike the upstream
// wrapper, a configured kms_key_id or endpoint wins over the
// AWSKMS_WRAPPER_KEY_ID and AWS_KMS_ENDPOINT environment variables, and
// the configure metadata says where the region and endpoint came from.
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/request"
	"github.com/aws/aws-sdk-go/service/kms"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/wrappers/awskms/v2"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// version is this plugin program's version.
const version = "0.1.0"

var settings = []sdk.Setting{
	{Name: "kms_key_id", Description: "key id, key ARN, alias name or alias ARN of the KMS key"},
	{Name: "region", Description: "AWS region (default: AWS_REGION, shared config, instance metadata, us-east-1)"},
	{Name: "endpoint", Description: "KMS endpoint URL, for a VPC endpoint or a KMS-compatible server"},
	{Name: "access_key", Secret: true, Description: "access key id, or file:// or env:// reference"},
	{Name: "secret_key", Secret: true, Description: "secret access key, or file:// or env:// reference"},
	{Name: "session_token", Secret: true, Description: "session token, or file:// or env:// reference"},
	{Name: "shared_creds_filename", Description: "path of a shared credentials file"},
	{Name: "shared_creds_profile", Description: "profile in the shared credentials file"},
	{Name: "web_identity_token_file", Description: "path of a web identity token file, for role assumption"},
	{Name: "role_arn", Description: "ARN of a role to assume"},
	{Name: "role_session_name", Description: "session name when assuming role_arn"},
	{Name: "disallow_env_vars", Bool: true, Description: "ignore AWSKMS_WRAPPER_KEY_ID and AWS_KMS_ENDPOINT"},
}

// Environment variables the upstream wrapper prefers over its settings.
const (
	envEndpoint = "AWS_KMS_ENDPOINT"
	envRegion   = "AWS_REGION"
	envRegion2  = "AWS_DEFAULT_REGION"
)

func main() {
	sdk.Serve(&wrapper{Wrapper: awskms.NewWrapper()},
		sdk.WithVersion(version),
		sdk.WithAAD(),
		sdk.WithSettings(settings...),
	)
}

// wrapper adapts the upstream awskms wrapper: configured values win over
// the environment, and AWS errors are sorted into bad settings and an
// unreachable KMS.
type wrapper struct {
	*awskms.Wrapper
}

func (w *wrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	opts, err := wrapping.GetOpts(opt...)
	if err != nil {
		return nil, err
	}
	conf := opts.WithConfigMap
	// The plugin process serves exactly this configuration, so changing
	// its own environment affects nothing else.
	if conf["kms_key_id"] != "" {
		os.Unsetenv(awskms.EnvAwsKmsWrapperKeyId)
		os.Unsetenv(awskms.EnvVaultAwsKmsSealKeyId)
	}
	if conf["endpoint"] != "" {
		os.Unsetenv(envEndpoint)
	}
	sources := settingSources(conf, os.Getenv)

	wc, err := w.Wrapper.SetConfig(ctx, opt...)
	if err != nil {
		return nil, configError(err)
	}
	if wc.Metadata == nil {
		wc.Metadata = make(map[string]string)
	}
	maps.Copy(wc.Metadata, sources)
	return wc, nil
}

// settingSources says where the effective region and endpoint came from:
// "config", "env" or "default", in the configure metadata as
// region_source and endpoint_source. A configured value wins over the
// environment. AWS_REGION and AWS_DEFAULT_REGION are read by the AWS SDK
// whatever disallow_env_vars says; AWS_KMS_ENDPOINT is read by the
// upstream wrapper unless disallow_env_vars is true, parsed as it parses
// it (strconv.ParseBool), so "1" and "TRUE" disallow too.
//
// TODO: a region from the shared config file or instance metadata is
// reported as "default"; only the environment is told apart.
func settingSources(conf map[string]string, getenv func(string) string) map[string]string {
	disallow, _ := strconv.ParseBool(conf["disallow_env_vars"])
	return map[string]string{
		"region_source":   source(conf["region"] != "", getenv(envRegion) != "" || getenv(envRegion2) != ""),
		"endpoint_source": source(conf["endpoint"] != "", getenv(envEndpoint) != "" && !disallow),
	}
}

func source(configured, env bool) string {
	switch {
	case configured:
		return "config"
	case env:
		return "env"
	default:
		return "default"
	}
}

func (w *wrapper) Encrypt(ctx context.Context, plaintext []byte, opt ...wrapping.Option) (*wrapping.BlobInfo, error) {
	blob, err := w.Wrapper.Encrypt(ctx, plaintext, opt...)
	return blob, callError(err)
}

func (w *wrapper) Decrypt(ctx context.Context, in *wrapping.BlobInfo, opt ...wrapping.Option) ([]byte, error) {
	plaintext, err := w.Wrapper.Decrypt(ctx, in, opt...)
	return plaintext, callError(err)
}

// configError names the setting an AWS refusal points at.
func configError(err error) error {
	var aerr awserr.Error
	if !errors.As(err, &aerr) {
		return callError(err)
	}
	switch aerr.Code() {
	case kms.ErrCodeNotFoundException, kms.ErrCodeInvalidArnException,
		kms.ErrCodeDisabledException, kms.ErrCodeInvalidStateException:
		return &sdk.SettingError{Setting: "kms_key_id", Problem: "was refused by KMS: " + aerr.Code(), Refused: true}
	case "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
		"IncompleteSignature", "ExpiredTokenException", "AccessDeniedException":
		return &sdk.SettingError{Setting: "access_key", Problem: "credentials were refused by KMS: " + aerr.Code(), Refused: true}
	}
	return callError(err)
}

// callError marks failures to reach KMS as unavailable, so the host
// retries instead of reporting bad input.
func callError(err error) error {
	var aerr awserr.Error
	if !errors.As(err, &aerr) {
		return err
	}
	switch aerr.Code() {
	case request.ErrCodeRequestError, request.ErrCodeResponseTimeout, request.CanceledErrorCode,
		kms.ErrCodeDependencyTimeoutException, kms.ErrCodeInternalException,
		kms.ErrCodeKeyUnavailableException, "ThrottlingException", "ServiceUnavailableException",
		"InternalFailure", "RequestTimeout":
		return fmt.Errorf("%w: %v", sdk.ErrBackendUnavailable, err)
	case kms.ErrCodeDisabledException, kms.ErrCodeInvalidStateException, kms.ErrCodeNotFoundException,
		"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException", "AccessDeniedException":
		// The broker's own key or credentials were refused: a fault of
		// the backend, not of the caller's ciphertext, and named as such.
		return fmt.Errorf("%w: KMS refused the request (%s)", sdk.ErrBackendUnavailable, aerr.Code())
	}
	return err
}
