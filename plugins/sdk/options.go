package sdk

import (
	"errors"
	"fmt"
)

// Setting declares one setting a plugin accepts. Configure rejects any
// setting that is not declared, so the list is the plugin's whole
// configuration contract; Describe reports it to the host.
type Setting struct {
	// Name is the setting's name as written in a KMS block.
	Name string
	// Secret marks a value that must never be logged or echoed: the host
	// redacts it and Configure strips it from every error message.
	Secret bool
	// Description is one line for operators.
	Description string
	// Bool marks a setting whose value must parse with strconv.ParseBool.
	// Configure checks it before the wrapper sees it.
	Bool bool
}

// SettingError is a setting the plugin rejected. Return it from a
// validator or a wrapper's SetConfig so that Configure names the setting
// exactly. Problem must describe what is wrong without quoting the value.
type SettingError struct {
	Setting string
	Problem string
	// Refused says the KMS itself turned the value down (a key not found
	// or disabled, credentials or a token denied), as opposed to a value
	// the plugin can tell is malformed. A refusal may pass later, when
	// the key is enabled or a permission propagates, so the host keeps
	// retrying a refused block instead of failing the broker's start.
	Refused bool
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("setting %q: %s", e.Setting, e.Problem)
}

// ErrBackendUnavailable marks an error as a failure to reach the KMS, as
// opposed to a bad request or bad settings. Wrap it (fmt.Errorf with %w)
// in errors from a wrapper or validator; the host then treats the failure
// as retryable. Network errors (net.Error) are recognised without it.
var ErrBackendUnavailable = errors.New("kms backend unavailable")

// Option changes how Serve and NewServer present a wrapper.
type Option func(*options)

type options struct {
	settings []Setting
	version  string
	aad      bool
	validate func(settings map[string]string) error
}

// WithSettings declares the settings the plugin accepts, in the order
// Describe reports them.
func WithSettings(settings ...Setting) Option {
	return func(o *options) { o.settings = append(o.settings, settings...) }
}

// WithVersion sets the plugin program's version string for Describe.
func WithVersion(version string) Option {
	return func(o *options) { o.version = version }
}

// WithAAD declares that the wrapper binds additional authenticated data:
// a blob encrypted with one AAD fails to decrypt with another. Declare it
// only when that is true (the conformance kit checks); a host binds AAD
// itself for plugins that do not declare it.
func WithAAD() Option {
	return func(o *options) { o.aad = true }
}

// WithValidator runs validate on the settings after the declared-name and
// boolean checks and before the wrapper's SetConfig. Return a
// *SettingError to name the setting at fault.
func WithValidator(validate func(settings map[string]string) error) Option {
	return func(o *options) { o.validate = validate }
}
