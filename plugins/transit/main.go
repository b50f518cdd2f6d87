// Command kmsbroker-plugin-transit serves a key in HashiCorp Vault's (or
// OpenBao's) transit secrets engine as a kmsbroker wrapper plugin.
//
// Transit's wrapper ignores AAD, so this plugin does not claim the AAD
// capability; the broker's plugin host binds AAD itself for it.
//
// Settings are those of go-kms-wrapping's transit wrapper: address, token,
// mount_path, key_name, namespace, disable_renewal, key_id_prefix, the
// tls_* settings, and disallow_env_vars, which stops the wrapper reading
// VAULT_* and TRANSIT_WRAPPER_* variables.
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strconv"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/wrappers/transit/v2"
	"github.com/hashicorp/vault/api"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
)

// version is this plugin program's version.
const version = "0.1.0"

var settings = []sdk.Setting{
	{Name: "address", Description: "Vault address, for example https://vault.example.com:8200 (default VAULT_ADDR)"},
	{Name: "token", Secret: true, Description: "Vault token, or file:// or env:// reference to one (default VAULT_TOKEN)"},
	{Name: "mount_path", Description: "mount path of the transit engine, for example transit/"},
	{Name: "key_name", Description: "name of the transit key"},
	{Name: "namespace", Description: "Vault Enterprise namespace"},
	{Name: "disable_renewal", Bool: true, Description: "do not renew the token"},
	{Name: "key_id_prefix", Description: "prefix prepended to the key version to form the key id"},
	{Name: "tls_ca_cert", Description: "path to a PEM CA certificate for the Vault server"},
	{Name: "tls_ca_path", Description: "path to a directory of PEM CA certificates"},
	{Name: "tls_client_cert", Description: "path to a PEM client certificate"},
	{Name: "tls_client_key", Secret: true, Description: "path to the client certificate's key, or file:// reference"},
	{Name: "tls_server_name", Description: "server name to verify in the Vault certificate"},
	{Name: "tls_skip_verify", Bool: true, Description: "skip TLS verification (testing only)"},
	{Name: "disallow_env_vars", Bool: true, Description: "ignore VAULT_* and TRANSIT_WRAPPER_* environment variables"},
}

func main() {
	sdk.Serve(&wrapper{Wrapper: transit.NewWrapper()},
		sdk.WithVersion(version),
		sdk.WithSettings(settings...),
	)
}

// wrapper adapts the upstream transit wrapper: it passes
// disallow_env_vars through (the upstream config map ignores it) and
// sorts Vault's errors into bad settings and an unreachable Vault.
type wrapper struct {
	*transit.Wrapper
}

func (w *wrapper) SetConfig(ctx context.Context, opt ...wrapping.Option) (*wrapping.WrapperConfig, error) {
	opts, err := wrapping.GetOpts(opt...)
	if err != nil {
		return nil, err
	}
	if v, ok := opts.WithConfigMap["disallow_env_vars"]; ok {
		disallow, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &sdk.SettingError{Setting: "disallow_env_vars", Problem: "must be true or false"}
		}
		opt = append(opt, wrapping.WithDisallowEnvVars(disallow))
	}
	wc, err := w.Wrapper.SetConfig(ctx, opt...)
	if err != nil {
		return nil, configError(err)
	}
	if wc.Metadata == nil {
		wc.Metadata = make(map[string]string)
	}
	maps.Copy(wc.Metadata, settingSources(opts.WithConfigMap, os.Getenv))
	return wc, nil
}

// settingSources says where the effective address, mount path, key name
// and namespace came from: "config", "env" or "default", in the
// configure metadata as <setting>_source. The upstream wrapper takes the
// address from the config before VAULT_ADDR, but the mount path, key name
// and namespace from its environment variables before the config unless
// disallow_env_vars is set; the broker logs these at start so that an
// overriding variable is seen.
func settingSources(conf map[string]string, getenv func(string) string) map[string]string {
	disallow, _ := strconv.ParseBool(conf["disallow_env_vars"])
	env := func(names ...string) bool {
		for _, n := range names {
			if getenv(n) != "" {
				return true
			}
		}
		return false
	}
	envFirst := func(setting string, names ...string) string {
		switch {
		case !disallow && env(names...):
			return "env"
		case conf[setting] != "":
			return "config"
		}
		return "default"
	}
	address := "default"
	switch {
	case conf["address"] != "":
		address = "config"
	case env("VAULT_ADDR"):
		address = "env"
	}
	return map[string]string{
		"address_source":    address,
		"mount_path_source": envFirst("mount_path", transit.EnvTransitWrapperMountPath, transit.EnvVaultTransitSealMountPath),
		"key_name_source":   envFirst("key_name", transit.EnvTransitWrapperKeyName, transit.EnvVaultTransitSealKeyName),
		"namespace_source":  envFirst("namespace", "VAULT_NAMESPACE"),
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

// configError names the setting a Vault refusal points at.
func configError(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			// A token limited to its key gets 403 for any other path
			// too, so a wrong mount path or key name looks the same.
			return &sdk.SettingError{Setting: "token", Problem: fmt.Sprintf(
				"was refused by Vault (HTTP %d): it is not valid, or it may not use key_name under mount_path", re.StatusCode),
				Refused: true}
		case http.StatusNotFound:
			return &sdk.SettingError{Setting: "mount_path", Problem: "has no transit engine (HTTP 404)", Refused: true}
		case http.StatusBadRequest:
			return &sdk.SettingError{Setting: "key_name", Problem: fmt.Sprintf("was rejected by Vault: %v", re.Errors), Refused: true}
		}
	}
	return callError(err)
}

// callError marks a Vault that is sealed, overloaded or failing, or that
// refuses the broker's own token, as unavailable: the fault is the
// broker's backend, not the caller's input, and the host must not report
// it as a bad ciphertext.
func callError(err error) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: Vault refused the token (HTTP %d): %v", sdk.ErrBackendUnavailable, re.StatusCode, err)
	case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %v", sdk.ErrBackendUnavailable, err)
	}
	return err
}
