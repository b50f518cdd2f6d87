package plugintest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kmsbroker/kmsbroker/plugins/sdk"
	pluginv1 "github.com/kmsbroker/kmsbroker/proto/plugin/v1"
)

// quotedValueLen is the shortest setting value the suite looks for in
// error messages; shorter values occur in ordinary words.
const quotedValueLen = 4

// largePlaintext is the size of the large round trip: bigger than any key
// the broker wraps, well inside gRPC's default 4 MiB message limit.
const largePlaintext = 1 << 20

type suite struct {
	cfg     Config
	results []Result
	// keyIDs are the key ids seen in blobs, for the stability check.
	mu     sync.Mutex
	keyIDs map[string]int
}

func (s *suite) record(check string, err error) {
	s.results = append(s.results, Result{Check: check, Err: err})
}

func (s *suite) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func (s *suite) run(ctx context.Context) ([]Result, error) {
	s.keyIDs = make(map[string]int)
	c, err := start(s.cfg)
	if err != nil {
		return nil, err
	}
	defer c.close()

	desc := s.checkDescribe(ctx, c)
	s.checkHealth(ctx, c, "health/before-configure", false)

	cctx, cancel := s.callCtx(ctx)
	conf, err := c.rpc.Configure(cctx, &pluginv1.ConfigureRequest{Settings: s.cfg.Settings})
	cancel()
	if err != nil {
		s.record("configure", fmt.Errorf("configure with the valid settings: %w", err))
		return s.results, nil
	}
	s.record("configure", nil)
	s.checkHealth(ctx, c, "health/configured", true)

	aad := desc.GetCapabilities().GetAad()
	s.checkRoundTrips(ctx, c, aad)
	s.checkAAD(ctx, c, aad)
	s.checkBadCiphertexts(ctx, c)
	s.checkConcurrency(ctx, c)
	s.checkKeyID(ctx, c, conf)
	if !c.alive() {
		s.record("no-crash", errors.New("the plugin process exited during the suite"))
	} else {
		s.record("no-crash", nil)
	}
	s.checkBadSettings(ctx)
	return s.results, nil
}

// checkDescribe checks that Describe is honest before Configure.
func (s *suite) checkDescribe(ctx context.Context, c *conn) *pluginv1.DescribeResponse {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	desc, err := c.rpc.Describe(cctx, &pluginv1.DescribeRequest{})
	if err != nil {
		s.record("describe", err)
		return nil
	}
	var problems []string
	if desc.GetProtocolVersion() != sdk.ProtocolVersion {
		problems = append(problems, fmt.Sprintf("protocol_version = %d, want %d", desc.GetProtocolVersion(), sdk.ProtocolVersion))
	}
	if desc.GetType() == "" {
		problems = append(problems, "type is empty")
	}
	if desc.GetPluginVersion() == "" {
		problems = append(problems, "plugin_version is empty")
	}
	if desc.GetKeyId() != "" {
		problems = append(problems, fmt.Sprintf("key_id = %q before configure, want empty", desc.GetKeyId()))
	}
	declared := make(map[string]bool)
	for _, spec := range desc.GetSettings() {
		switch {
		case spec.GetName() == "":
			problems = append(problems, "a setting has no name")
		case declared[spec.GetName()]:
			problems = append(problems, fmt.Sprintf("setting %q declared twice", spec.GetName()))
		}
		declared[spec.GetName()] = true
	}
	for _, name := range sortedKeys(s.cfg.Settings) {
		if !declared[name] {
			problems = append(problems, fmt.Sprintf("setting %q is used by the suite but not declared", name))
		}
	}
	if len(problems) > 0 {
		s.record("describe", errors.New(strings.Join(problems, "; ")))
	} else {
		s.record("describe", nil)
	}
	return desc
}

func (s *suite) checkHealth(ctx context.Context, c *conn, check string, want bool) {
	s.record(check, s.health(ctx, c, want))
}

// health calls Health and checks that it reports configured = want.
func (s *suite) health(ctx context.Context, c *conn, want bool) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	h, err := c.rpc.Health(cctx, &pluginv1.HealthRequest{})
	switch {
	case err != nil:
		return err
	case h.GetConfigured() != want:
		return fmt.Errorf("health reports configured = %v, want %v", h.GetConfigured(), want)
	}
	return nil
}

// roundTrip encrypts and decrypts plaintext with aad.
func (s *suite) roundTrip(ctx context.Context, c *conn, plaintext, aad []byte) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	enc, err := c.rpc.Encrypt(cctx, &pluginv1.EncryptRequest{Plaintext: plaintext, Aad: aad})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := s.noteBlob(enc.GetBlobInfo(), plaintext); err != nil {
		return err
	}
	dec, err := c.rpc.Decrypt(cctx, &pluginv1.DecryptRequest{BlobInfo: enc.GetBlobInfo(), Aad: aad})
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	if !bytes.Equal(dec.GetPlaintext(), plaintext) {
		return fmt.Errorf("decrypt returned %d bytes that differ from the %d encrypted", len(dec.GetPlaintext()), len(plaintext))
	}
	return nil
}

// noteBlob checks that blob is a BlobInfo that does not carry the
// plaintext, and records its key id.
func (s *suite) noteBlob(raw, plaintext []byte) error {
	var blob wrapping.BlobInfo
	if err := proto.Unmarshal(raw, &blob); err != nil {
		return fmt.Errorf("blob_info is not a protobuf BlobInfo: %w", err)
	}
	if len(blob.Ciphertext) == 0 {
		return errors.New("blob has no ciphertext")
	}
	if len(blob.Plaintext) > 0 || (len(plaintext) >= 16 && bytes.Contains(raw, plaintext)) {
		return errors.New("blob carries the plaintext")
	}
	s.mu.Lock()
	s.keyIDs[blob.GetKeyInfo().GetKeyId()]++
	s.mu.Unlock()
	return nil
}

func (s *suite) checkRoundTrips(ctx context.Context, c *conn, aad bool) {
	cases := []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"small", randomBytes(32)},
		{"1MiB", randomBytes(largePlaintext)},
	}
	for _, tc := range cases {
		s.record("round-trip/"+tc.name, s.roundTrip(ctx, c, tc.plaintext, nil))
		if aad {
			s.record("round-trip/"+tc.name+"-aad", s.roundTrip(ctx, c, tc.plaintext, []byte("plugintest aad")))
		}
	}
}

// checkAAD checks that a plugin that claims to bind AAD does: decrypting
// with another AAD, or none, fails.
func (s *suite) checkAAD(ctx context.Context, c *conn, aad bool) {
	if !aad {
		return
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	enc, err := c.rpc.Encrypt(cctx, &pluginv1.EncryptRequest{Plaintext: []byte("bound"), Aad: []byte("aad one")})
	if err != nil {
		s.record("aad/bound", fmt.Errorf("encrypt: %w", err))
		return
	}
	for _, other := range [][]byte{[]byte("aad two"), nil} {
		dec, err := c.rpc.Decrypt(cctx, &pluginv1.DecryptRequest{BlobInfo: enc.GetBlobInfo(), Aad: other})
		if err == nil {
			s.record("aad/bound", fmt.Errorf("describe claims aad, but a blob made with aad %q decrypts with aad %q (to %q)", "aad one", other, dec.GetPlaintext()))
			return
		}
	}
	s.record("aad/bound", nil)
}

// checkBadCiphertexts feeds broken blobs to Decrypt: each must be refused
// with InvalidArgument, and the plugin must still answer Health, configured,
// afterwards.
func (s *suite) checkBadCiphertexts(ctx context.Context, c *conn) {
	cctx, cancel := s.callCtx(ctx)
	enc, err := c.rpc.Encrypt(cctx, &pluginv1.EncryptRequest{Plaintext: []byte("a valid blob to break")})
	cancel()
	if err != nil {
		s.record("bad-ciphertext", fmt.Errorf("encrypt: %w", err))
		return
	}
	valid := enc.GetBlobInfo()
	var blob wrapping.BlobInfo
	if err := proto.Unmarshal(valid, &blob); err != nil || len(blob.Ciphertext) == 0 {
		s.record("bad-ciphertext", fmt.Errorf("encrypt returned no usable blob: %v", err))
		return
	}
	flipped := proto.Clone(&blob).(*wrapping.BlobInfo)
	flipped.Ciphertext[len(flipped.Ciphertext)-1] ^= 0x01
	noCiphertext := proto.Clone(&blob).(*wrapping.BlobInfo)
	noCiphertext.Ciphertext = nil
	// A blob cut short as a whole does not parse, and the SDK refuses it
	// before the wrapper sees it; one that parses with its ciphertext cut
	// short reaches the wrapper.
	halfCiphertext := proto.Clone(&blob).(*wrapping.BlobInfo)
	halfCiphertext.Ciphertext = halfCiphertext.Ciphertext[:len(halfCiphertext.Ciphertext)/2]

	cases := []struct {
		name string
		blob []byte
	}{
		{"empty", nil},
		{"truncated", valid[:len(valid)/2]},
		{"garbage", randomBytes(64)},
		{"flipped-bit", mustMarshal(flipped)},
		{"no-ciphertext", mustMarshal(noCiphertext)},
		{"truncated-ciphertext", mustMarshal(halfCiphertext)},
		{"empty-ciphertext", withEmptyCiphertext(noCiphertext)},
	}
	for _, tc := range cases {
		cctx, cancel := s.callCtx(ctx)
		dec, err := c.rpc.Decrypt(cctx, &pluginv1.DecryptRequest{BlobInfo: tc.blob})
		cancel()
		var problems []string
		switch {
		case err == nil:
			problems = append(problems, fmt.Sprintf("decrypt succeeded (%d bytes)", len(dec.GetPlaintext())))
		case status.Code(err) != codes.InvalidArgument:
			problems = append(problems, fmt.Sprintf("decrypt: %v; want code InvalidArgument", err))
		}
		if err := s.health(ctx, c, true); err != nil {
			problems = append(problems, fmt.Sprintf("health after it: %v", err))
		}
		if !c.alive() {
			problems = append(problems, "the plugin process exited")
		}
		var failed error
		if len(problems) > 0 {
			failed = errors.New(strings.Join(problems, "; "))
		}
		s.record("bad-ciphertext/"+tc.name, failed)
	}
}

// withEmptyCiphertext encodes blob, which has no ciphertext, with the
// ciphertext field present and zero bytes long. Go's encoder leaves an
// empty bytes field out, as in the no-ciphertext case; other encoders may
// write it.
func withEmptyCiphertext(blob *wrapping.BlobInfo) []byte {
	field := blob.ProtoReflect().Descriptor().Fields().ByName("ciphertext").Number()
	b := protowire.AppendTag(nil, field, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	return append(b, mustMarshal(blob)...)
}

// checkConcurrency runs cfg.Concurrency encrypt-decrypt round trips at
// once.
func (s *suite) checkConcurrency(ctx context.Context, c *conn) {
	errs := make(chan error, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.Concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- s.roundTrip(ctx, c, []byte(fmt.Sprintf("concurrent plaintext %d", i)), nil)
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		s.record("concurrency", fmt.Errorf("%d of %d concurrent round trips failed; first: %w", failed, s.cfg.Concurrency, first))
		return
	}
	s.record("concurrency", nil)
}

// checkKeyID checks that every blob named the same key and that Describe
// keeps reporting it.
func (s *suite) checkKeyID(ctx context.Context, c *conn, conf *pluginv1.ConfigureResponse) {
	s.mu.Lock()
	ids := maps.Clone(s.keyIDs)
	s.mu.Unlock()
	if len(ids) > 1 {
		shown := sortedKeys(ids)[:2]
		s.record("key-id/stable", fmt.Errorf("blobs name %d different key ids, for example %q and %q", len(ids), shown[0], shown[1]))
		return
	}
	var first string
	for id := range ids {
		first = id
	}
	for i := 0; i < 2; i++ {
		cctx, cancel := s.callCtx(ctx)
		desc, err := c.rpc.Describe(cctx, &pluginv1.DescribeRequest{})
		cancel()
		if err != nil {
			s.record("key-id/stable", err)
			return
		}
		if first != "" && desc.GetKeyId() != first {
			s.record("key-id/stable", fmt.Errorf("describe reports key id %q, blobs name %q (configure said %q)", desc.GetKeyId(), first, conf.GetKeyId()))
			return
		}
	}
	s.record("key-id/stable", nil)
}

// checkBadSettings configures fresh processes with refused settings.
func (s *suite) checkBadSettings(ctx context.Context) {
	unknown := maps.Clone(s.cfg.Settings)
	if unknown == nil {
		unknown = map[string]string{}
	}
	unknown[UnknownSetting] = "plugintest-unknown-value"
	cases := append([]BadSettings{{Settings: unknown, Setting: UnknownSetting}}, s.cfg.BadSettings...)
	for i, bad := range cases {
		check := fmt.Sprintf("bad-settings/%d-%s", i, bad.Setting)
		s.record(check, s.badSettings(ctx, bad))
	}
}

func (s *suite) badSettings(ctx context.Context, bad BadSettings) error {
	c, err := start(s.cfg)
	if err != nil {
		return err
	}
	defer c.close()
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	_, err = c.rpc.Configure(cctx, &pluginv1.ConfigureRequest{Settings: bad.Settings})
	if err == nil {
		return errors.New("configure accepted the settings")
	}
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument && st.Code() != codes.FailedPrecondition {
		return fmt.Errorf("configure: %w; want code InvalidArgument (malformed) or FailedPrecondition (refused by the KMS)", err)
	}
	if !strings.Contains(st.Message(), bad.Setting) {
		return fmt.Errorf("configure error %q does not name setting %q", st.Message(), bad.Setting)
	}
	for _, name := range sortedKeys(bad.Settings) {
		if v := bad.Settings[name]; len(v) >= quotedValueLen && quotes(st.Message(), v, bad.Settings) {
			return fmt.Errorf("configure error quotes the value of setting %q", name)
		}
	}
	if !c.alive() {
		return errors.New("the plugin process exited")
	}
	return nil
}

// quotes reports whether msg contains value other than inside the name of
// one of the settings (a key named "prefix" inside the setting name
// "prefix_extra" is not a quoted value).
func quotes(msg, value string, settings map[string]string) bool {
	inName := make([]bool, len(msg))
	for name := range settings {
		for i := 0; ; {
			j := strings.Index(msg[i:], name)
			if j < 0 {
				break
			}
			for k := i + j; k < i+j+len(name); k++ {
				inName[k] = true
			}
			i += j + 1
		}
	}
	for i := 0; ; {
		j := strings.Index(msg[i:], value)
		if j < 0 {
			return false
		}
		for k := i + j; k < i+j+len(value); k++ {
			if !inName[k] {
				return true
			}
		}
		i += j + 1
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err) // a message this package built always encodes
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
