package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsbroker/kmsbroker/broker/purpose"
)

// parseFile parses testdata/<name> under the file name "broker.hcl", so
// that expected errors read as an operator would see them.
func parseFile(t *testing.T, name string) (*Config, error) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(src, "broker.hcl")
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		file string
		// server validates for brokerd server after a clean parse.
		server bool
		want   string
	}{
		{"missing_root.hcl", true,
			`invalid config: broker.hcl:1,1-1: no kms block serves purpose "root", which brokerd server requires`},
		{"server_no_listener.hcl", true,
			`invalid config: broker.hcl:1,1-1: no listener block, which brokerd server requires: the default listener needs tls_cert_file and tls_key_file unless tls_disable = true`},
		{"duplicate_purpose.hcl", false,
			`invalid config: broker.hcl:7,26-32: purpose "root" is already served by kms "awskms" at broker.hcl:1,1-13; each purpose is served by exactly one block`},
		{"purpose_twice.hcl", false,
			`invalid config: broker.hcl:2,34-40: purpose "root" is listed twice in this block`},
		{"root_and_previous.hcl", false,
			`invalid config: broker.hcl:2,13-38: one block cannot serve both root and previous-root; previous-root is the key being retired`},
		{"unknown_purpose.hcl", false,
			`invalid config: broker.hcl:3,14-19: unknown purpose "rot" (valid: root, previous-root, worker-auth, recovery, config): did you mean "root"?`},
		{"unknown_type.hcl", false,
			`invalid config: broker.hcl:5,5-14: unknown plugin type "awskmss" (built in: aead, awskms, transit): did you mean "awskms"?`},
		{"unknown_type_third_party.hcl", false,
			`invalid config: broker.hcl:1,5-10: unknown plugin type "hsm" (built in: aead, awskms, transit): a third-party plugin needs plugin_path`},
		{"invalid_type_label.hcl", false,
			`invalid config: broker.hcl:1,5-13: invalid plugin type "../hsm": use lower-case letters, digits, "_" and "-"`},
		{"no_purpose.hcl", false,
			`invalid config: broker.hcl:1,1-14: kms "transit" block has no purpose`},
		{"no_purpose_typo.hcl", false,
			`invalid config: broker.hcl:1,1-14: kms "transit" block has no purpose: did you mean "purpose" instead of "purpse"?`},
		{"empty_purpose.hcl", false,
			`invalid config: broker.hcl:2,13-15: kms "aead" block has no purpose`},
		{"purpose_not_list.hcl", false,
			`invalid config: broker.hcl:2,13-19: purpose must be a list such as ["root"]`},
		{"bad_duration.hcl", false,
			`invalid config: broker.hcl:3,19-30: timeout is not a duration such as "5s" or "1m30s"; broker.hcl:4,19-24: start_timeout must be positive`},
		{"bad_cache_size.hcl", false,
			`invalid config: broker.hcl:1,14-16: cache_size must be a whole number from 1 to 10000000`},
		{"bad_max_plaintext.hcl", false,
			`invalid config: broker.hcl:3,25-34: max_plaintext_bytes must be a whole number from 1 to 67108864`},
		{"bad_worker_scopes.hcl", false,
			`invalid config: broker.hcl:2,19-24: worker_scopes must be a list of scope ids`},
		{"long_token_validity.hcl", false,
			`invalid config: broker.hcl:2,29-33: one_time_token_validity must be at most 1h0m0s`},
		{"bad_sha256.hcl", false,
			`invalid config: broker.hcl:4,19-27: plugin_sha256 must be 64 hexadecimal digits`},
		{"list_setting.hcl", false,
			`invalid config: broker.hcl:3,13-29: setting "key" must be a string, number or bool, not a list`},
		{"object_setting.hcl", false,
			`invalid config: broker.hcl:3,9-5,4: setting "key" must be a string, number or bool, not an object`},
		{"null_setting.hcl", false,
			`invalid config: broker.hcl:3,13-17: setting "key_id" must not be null`},
		{"nested_block.hcl", false,
			`invalid config: broker.hcl:3,3-6: unexpected "tls" block: Blocks are not allowed here`},
		{"tls_missing.hcl", false,
			`invalid config: broker.hcl:1,1-15: listener needs tls_cert_file and tls_key_file unless tls_disable = true`},
		{"tls_conflict.hcl", false,
			`invalid config: broker.hcl:1,1-15: listener sets tls_disable = true and a TLS certificate or key file; remove one`},
		{"bad_address.hcl", false,
			`invalid config: broker.hcl:2,17-28: listener address must be host:port`},
		{"grpc_address_same.hcl", false,
			`invalid config: broker.hcl:3,18-34: listener grpc_address must differ from address`},
		{"grpc_address_bad.hcl", false,
			`invalid config: broker.hcl:3,18-24: listener grpc_address must be host:port`},
		{"wrong_type.hcl", false,
			`invalid config: broker.hcl:2,17-24: tls_disable must be a bool`},
		{"duplicate_listener.hcl", false,
			`invalid config: broker.hcl:9,1-15: duplicate listener block (the first is at broker.hcl:1,1-15); ` +
				`broker.hcl:13,1-19: duplicate storage block (the first is at broker.hcl:5,1-17); ` +
				`broker.hcl:18,1-8: duplicate plugins block (the first is at broker.hcl:17,1-8)`},
		{"unknown_storage.hcl", false,
			`invalid config: broker.hcl:1,9-16: unknown storage type "mysql" (valid: sqlite, postgres)`},
		{"storage_missing_path.hcl", false,
			`invalid config: broker.hcl:1,18-18: missing required argument: The argument "path" is required, but no definition was found`},
		{"bad_log_level.hcl", false,
			`invalid config: broker.hcl:1,13-20: unknown log_level "infoo" (valid: trace, debug, info, warn, error): did you mean "info"?`},
		{"syntax_error.hcl", false,
			`invalid config: broker.hcl:3,1-2: missing item separator`},
		{"unknown_block.hcl", false,
			`invalid config: broker.hcl:1,1-8: unsupported block type: Blocks of type "listner" are not expected here. Did you mean "listener"?`},
		{"unknown_attribute.hcl", false,
			`invalid config: broker.hcl:1,1-10: unsupported argument: An argument named "log_levle" is not expected here. Did you mean "log_level"?; ` +
				`broker.hcl:4,3-9: unsupported argument: An argument named "adress" is not expected here. Did you mean "address"?`},
		{"env_unset.hcl", false,
			`invalid config: broker.hcl:3,13-47: token: the environment variable it names is not set`},
		{"env_empty_name.hcl", false,
			`invalid config: broker.hcl:3,13-21: token: env:// needs a variable name`},
		{"file_missing.hcl", false,
			`invalid config: broker.hcl:3,13-49: token: cannot read the file it names: no such file`},
		{"file_directory.hcl", false,
			`invalid config: broker.hcl:3,13-30: token: cannot read the file it names: not a regular file`},
		{"postgres_env_unset.hcl", false,
			`invalid config: broker.hcl:2,9-44: url: the environment variable it names is not set`},
	}

	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(strings.TrimSuffix(tt.file, ".hcl"), func(t *testing.T) {
			c, err := parseFile(t, filepath.Join("invalid", tt.file))
			if err == nil && tt.server {
				err = c.Validate(ValidateOptions{Server: true})
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got error\n  %s\nwant\n  %s", got, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			var cfgErr *Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("error is %T, want *Error", err)
			}
			for _, d := range cfgErr.Diagnostics {
				if d.Subject == nil || d.Subject.Filename != "broker.hcl" || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic %q has no file position", d.Summary)
				}
			}
		})
	}

	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no case in TestParseErrors", f)
		}
	}
}

func TestParseFull(t *testing.T) {
	c, err := parseFile(t, "valid_full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ValidateOptions{Server: true}); err != nil {
		t.Errorf("Validate(Server): %v", err)
	}

	wantListener := Listener{Address: "0.0.0.0:9443", GRPCAddress: "0.0.0.0:9444", TLSCertFile: "/etc/brokerd/tls.crt", TLSKeyFile: "/etc/brokerd/tls.key",
		MaxPlaintextBytes: 65536}
	if c.Listener != wantListener {
		t.Errorf("Listener: got %+v, want %+v", c.Listener, wantListener)
	}
	wantStorage := Storage{Type: "postgres", URL: "postgres://broker@db.internal:5432/broker?sslmode=verify-full"}
	if c.Storage != wantStorage {
		t.Errorf("Storage: got %+v, want %+v", c.Storage, wantStorage)
	}
	if got, want := c.Plugins.Directory, "/usr/libexec/kmsbroker"; got != want {
		t.Errorf("Plugins.Directory: got %q, want %q", got, want)
	}
	if got, want := c.LogLevel, "debug"; got != want {
		t.Errorf("LogLevel: got %q, want %q", got, want)
	}

	want := []KMS{
		{
			Name: "awskms", Type: "awskms",
			Purposes:     []purpose.Purpose{purpose.Root},
			Settings:     map[string]string{"region": "us-east-1", "kms_key_id": "alias/broker-root"},
			Timeout:      2 * time.Second,
			StartTimeout: 30 * time.Second,
		},
		{
			Name: "aead", Type: "aead",
			Purposes:     []purpose.Purpose{purpose.WorkerAuth, purpose.Recovery},
			Settings:     map[string]string{"key": "c2VjcmV0LWtleS1ieXRlcy10aGF0LWFyZS0zMi1ieXRlcyE=", "key_id": "local-1"},
			Timeout:      DefaultTimeout,
			StartTimeout: DefaultStartTimeout,
		},
		{
			Name: "aead#2", Type: "aead",
			Purposes: []purpose.Purpose{purpose.Config},
			Settings: map[string]string{
				"key_id": "local-2", "rotate": "true", "max_retries": "3", "backoff_factor": "1.5",
			},
			Timeout:      DefaultTimeout,
			StartTimeout: DefaultStartTimeout,
		},
		{
			Name: "custom-hsm", Type: "custom-hsm",
			Purposes:     []purpose.Purpose{purpose.PreviousRoot},
			Settings:     map[string]string{"slot": "0"},
			PluginPath:   "/opt/hsm/kmsbroker-plugin-hsm",
			PluginSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Timeout:      DefaultTimeout,
			StartTimeout: DefaultStartTimeout,
		},
	}
	wantRanges := []string{"broker.hcl:20,1-13", "broker.hcl:28,1-11", "broker.hcl:34,1-11", "broker.hcl:42,1-17"}
	if len(c.KMS) != len(want) {
		t.Fatalf("got %d kms blocks, want %d", len(c.KMS), len(want))
	}
	for i, w := range want {
		checkKMS(t, c.KMS[i], &w)
		if got := c.KMS[i].Range.String(); got != wantRanges[i] {
			t.Errorf("KMS[%d].Range: got %s, want %s", i, got, wantRanges[i])
		}
	}

	for _, p := range purpose.All() {
		b := c.Block(p)
		if b == nil || !slices.Contains(b.Purposes, p) {
			t.Errorf("Block(%s) = %v, want the block that lists it", p, b)
		}
	}
}

// checkKMS compares the parsed fields of a kms block.
func checkKMS(t *testing.T, got, want *KMS) {
	t.Helper()
	if got.Name != want.Name || got.Type != want.Type || got.PluginPath != want.PluginPath ||
		got.PluginSHA256 != want.PluginSHA256 || got.Timeout != want.Timeout ||
		got.StartTimeout != want.StartTimeout {
		t.Errorf("kms %s: got name %q type %q path %q sha256 %q timeout %v start %v, want %q %q %q %q %v %v",
			want.Name, got.Name, got.Type, got.PluginPath, got.PluginSHA256, got.Timeout, got.StartTimeout,
			want.Name, want.Type, want.PluginPath, want.PluginSHA256, want.Timeout, want.StartTimeout)
	}
	if !slices.Equal(got.Purposes, want.Purposes) {
		t.Errorf("kms %s purposes: got %v, want %v", want.Name, got.Purposes, want.Purposes)
	}
	if len(got.Settings) != len(want.Settings) {
		t.Errorf("kms %s: got %d settings, want %d", want.Name, len(got.Settings), len(want.Settings))
	}
	for k, v := range want.Settings {
		if got.Settings[k] != v {
			t.Errorf("kms %s setting %s: got %q, want %q", want.Name, k, got.Settings[k], v)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`kms "aead" { purpose = ["recovery"] }`), "recovery.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Listener{Address: DefaultAddress}); c.Listener != want {
		t.Errorf("Listener: got %+v, want %+v", c.Listener, want)
	}
	if want := (Storage{Type: "sqlite"}); c.Storage != want {
		t.Errorf("Storage: got %+v, want %+v", c.Storage, want)
	}
	if c.Plugins.Directory != "" {
		t.Errorf("Plugins.Directory: got %q, want empty", c.Plugins.Directory)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel: got %q, want info", c.LogLevel)
	}
	checkKMS(t, c.KMS[0], &KMS{
		Name: "aead", Type: "aead", Purposes: []purpose.Purpose{purpose.Recovery},
		Timeout: 5 * time.Second, StartTimeout: 10 * time.Second,
	})
	if err := c.Validate(ValidateOptions{}); err != nil {
		t.Errorf("Validate without Server: %v", err)
	}
	if c.Block(purpose.Root) != nil {
		t.Errorf("Block(root) on a file without root: got a block, want nil")
	}
}

func TestParseNames(t *testing.T) {
	src := `
kms "aead"    { purpose = ["root"] }
kms "transit" { purpose = ["recovery"] }
kms "aead"    { purpose = ["config"] }
kms "aead"    { purpose = ["worker-auth"] }
`
	c, err := Parse([]byte(src), "broker.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range c.KMS {
		got = append(got, k.Name)
	}
	if want := []string{"aead", "transit", "aead#2", "aead#3"}; !slices.Equal(got, want) {
		t.Errorf("names: got %v, want %v", got, want)
	}
	if b := c.Block(purpose.WorkerAuth); b == nil || b.Name != "aead#3" {
		t.Errorf("Block(worker-auth): got %v, want aead#3", b)
	}
}

func TestParseReferences(t *testing.T) {
	t.Setenv("KMSBROKER_TEST_KEY_ID", "from-env")
	c, err := parseFile(t, "valid_client.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"key":    "cmVjb3Zlcnkta2V5LWJ5dGVzLXRoYXQtYXJlLTMyLWJ5dGVzIQ==",
		"key_id": "from-env",
	}
	for k, v := range want {
		if got := c.KMS[0].Settings[k]; got != v {
			t.Errorf("setting %s: got %q, want %q", k, got, v)
		}
	}

	t.Setenv("KMSBROKER_TEST_PG_URL", "postgres://u:p@db/broker")
	src := `
storage "postgres" { url = "env://KMSBROKER_TEST_PG_URL" }
kms "aead" {
  purpose = ["root"]
  key_id  = "env://KMSBROKER_TEST_KEY_ID"
  number  = 7
}
`
	c, err = Parse([]byte(src), "broker.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Storage.URL, "postgres://u:p@db/broker"; got != want {
		t.Errorf("storage url: got %q, want %q", got, want)
	}
	if got, want := c.KMS[0].Settings["key_id"], "from-env"; got != want {
		t.Errorf("setting key_id: got %q, want %q", got, want)
	}
}

func TestResolveRef(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	lf := write("lf", []byte("token\n"))
	crlf := write("crlf", []byte("token\r\n"))
	two := write("two", []byte("token\n\n"))
	exact := write("exact", make([]byte, maxRefFileSize))
	large := write("large", make([]byte, maxRefFileSize+1))
	t.Setenv("KMSBROKER_TEST_SET", "value")
	t.Setenv("KMSBROKER_TEST_EMPTY", "")

	tests := []struct {
		value   string
		want    string
		wantErr string
	}{
		{"plain", "plain", ""},
		{"", "", ""},
		{"env:/KMSBROKER_TEST_SET", "env:/KMSBROKER_TEST_SET", ""},
		{"env://KMSBROKER_TEST_SET", "value", ""},
		{"env://KMSBROKER_TEST_EMPTY", "", ""},
		{"env://KMSBROKER_TEST_UNSET", "", "token: the environment variable it names is not set"},
		{"env://", "", "token: env:// needs a variable name"},
		{"file://" + lf, "token", ""},
		{"file://" + crlf, "token", ""},
		{"file://" + two, "token\n", ""},
		{"file://" + exact, string(make([]byte, maxRefFileSize)), ""},
		{"file://" + large, "", "token: cannot read the file it names: larger than 64 KiB"},
		{"file://" + dir, "", "token: cannot read the file it names: not a regular file"},
		{"file://" + filepath.Join(dir, "absent"), "", "token: cannot read the file it names: no such file"},
		{"file://", "", "token: file:// needs a path"},
	}
	rng := fileStart("broker.hcl")
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, diag := resolveRef("token", tt.value, rng)
			if tt.wantErr != "" {
				if diag == nil {
					t.Fatalf("got %q, want error %q", got, tt.wantErr)
				}
				if diag.Summary != tt.wantErr {
					t.Errorf("got error %q, want %q", diag.Summary, tt.wantErr)
				}
				return
			}
			if diag != nil {
				t.Fatalf("got error %q, want %q", diag.Summary, tt.want)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("reads the file", func(t *testing.T) {
		c, err := Load(filepath.Join("testdata", "valid_full.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.KMS[0].Range.Filename, filepath.Join("testdata", "valid_full.hcl"); got != want {
			t.Errorf("range file: got %q, want %q", got, want)
		}
	})
	t.Run("missing file is not a config error", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "absent.hcl"))
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
			t.Errorf("got %v, want a not-exist error that is not ErrInvalid", err)
		}
	})
	t.Run("errors name the path", func(t *testing.T) {
		path := filepath.Join("testdata", "invalid", "unknown_purpose.hcl")
		_, err := Load(path)
		if want := path + ":3,14-19: unknown purpose"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	})
	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huge.hcl")
		if err := os.WriteFile(path, make([]byte, maxConfigSize+1), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if !errors.Is(err, errTooLarge) {
			t.Errorf("got %v, want %v", err, errTooLarge)
		}
	})
}

// TestErrorsHoldNoSecret plants a secret in settings written in every
// broken way the parser reports, and checks that no error repeats it.
func TestErrorsHoldNoSecret(t *testing.T) {
	const secret = "s3cr3tV4lue"
	tests := []struct{ name, src string }{
		{"list", `key = ["` + secret + `"]`},
		{"object", `key = { v = "` + secret + `" }`},
		{"bad escape", `key = "` + secret + `\q"`},
		{"template keyword", `key = "%{` + secret + `}"`},
		{"interpolation", `key = "${` + secret + `}"`},
		{"function", `key = ` + secret + `("x")`},
		{"arithmetic", `key = "` + secret + `" + 1`},
		{"index", `key = "` + secret + `"[0]`},
		{"env", `key = "env://` + secret + `"`},
		{"file", `key = "file:///nonexistent/` + secret + `"`},
		{"unterminated", `key = "` + secret},
		{"duration", `timeout = "` + secret + `"`},
		{"sha256", `plugin_sha256 = "` + secret + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "kms \"aead\" {\n  purpose = [\"root\"]\n  " + tt.src + "\n}\n"
			_, err := Parse([]byte(src), "broker.hcl")
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error repeats the secret: %v", err)
			}
			var cfgErr *Error
			if errors.As(err, &cfgErr) {
				for _, d := range cfgErr.Diagnostics {
					if strings.Contains(d.Summary+d.Detail, secret) {
						t.Errorf("diagnostic repeats the secret: %s", formatDiag(d))
					}
				}
			}
		})
	}
}

func TestCheckSettings(t *testing.T) {
	src := `kms "transit" {
  purpose  = ["root"]
  address  = "https://vault.internal:8200"
  key_nmae = "broker"
  timout   = "3s"
  zzz      = 1
}
`
	c, err := Parse([]byte(src), "broker.hcl")
	if err != nil {
		t.Fatal(err)
	}
	k := c.KMS[0]
	tests := []struct {
		name  string
		known []string
		want  string
	}{
		{"all known", []string{"address", "key_name", "key_nmae", "timout", "zzz"}, ""},
		{"typos and an unknown", []string{"address", "key_name", "token", "mount_path"},
			`invalid config: broker.hcl:4,3-11: unknown setting "key_nmae" for plugin "transit": did you mean "key_name"?; ` +
				`broker.hcl:5,3-9: unknown setting "timout" for plugin "transit": did you mean "timeout"?; ` +
				`broker.hcl:6,3-6: unknown setting "zzz" for plugin "transit"`},
		{"nothing known", nil,
			`invalid config: broker.hcl:3,3-10: unknown setting "address" for plugin "transit"; ` +
				`broker.hcl:4,3-11: unknown setting "key_nmae" for plugin "transit"; ` +
				`broker.hcl:5,3-9: unknown setting "timout" for plugin "transit": did you mean "timeout"?; ` +
				`broker.hcl:6,3-6: unknown setting "zzz" for plugin "transit"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.CheckSettings(tt.known)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error\n  %v\nwant\n  %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
		})
	}

	t.Run("block built in code", func(t *testing.T) {
		k := &KMS{Type: "aead", Settings: map[string]string{"kye": "x"}}
		k.Range.Filename = "dev"
		err := k.CheckSettings([]string{"key", "key_id"})
		want := `invalid config: dev:0,0-0: unknown setting "kye" for plugin "aead": did you mean "key"?`
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
}

func TestAuthAndAudit(t *testing.T) {
	cfg, err := Load("testdata/auth.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Audit.Path, "/var/log/brokerd/audit.log"; got != want {
		t.Errorf("Audit.Path = %q, want %q", got, want)
	}
	if got, want := cfg.Auth.OneTimeTokenValidity, 2*time.Minute; got != want {
		t.Errorf("OneTimeTokenValidity = %s, want %s", got, want)
	}
	if got, want := strings.Join(cfg.Auth.WorkerScopes, ","), "o_1,global"; got != want {
		t.Errorf("WorkerScopes = %q, want %q", got, want)
	}
	if got, want := cfg.CacheSize, 5000; got != want {
		t.Errorf("CacheSize = %d, want %d", got, want)
	}
	if got, want := cfg.KMS[0].MaxRestartBackoff, 2*time.Second; got != want {
		t.Errorf("MaxRestartBackoff = %s, want %s", got, want)
	}
	if got, want := cfg.KMS[0].HealthCheckInterval, time.Minute; got != want {
		t.Errorf("HealthCheckInterval = %s, want %s", got, want)
	}
	if _, ok := cfg.KMS[0].Settings["health_check_interval"]; ok {
		t.Error("health_check_interval leaked into the plugin settings")
	}

	def, err := Parse([]byte(`kms "aead" { purpose = ["root"] }`), "min.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if def.Auth.OneTimeTokenValidity != DefaultOneTimeTokenValidity || def.Auth.WorkerScopes != nil || def.Audit.Path != "" {
		t.Errorf("defaults: auth %+v audit %+v", def.Auth, def.Audit)
	}
}
