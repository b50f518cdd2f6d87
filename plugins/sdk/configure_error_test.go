package sdk

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// configureError tells the host which setting failed and whether the KMS
// refused it (the host keeps retrying) or the value is malformed (the
// broker's start fails).
func TestConfigureErrorCodes(t *testing.T) {
	scrub := configScrub{all: strings.NewReplacer("s3cret", "<value>"), secrets: strings.NewReplacer("s3cret", "<value>")}
	tests := []struct {
		name        string
		err         error
		wantCode    codes.Code
		wantSetting string
	}{
		{"malformed", &SettingError{Setting: "key", Problem: "is not valid base64"}, codes.InvalidArgument, "key"},
		{"refused by the kms", &SettingError{Setting: "kms_key_id", Problem: "was refused by KMS", Refused: true}, codes.FailedPrecondition, "kms_key_id"},
		{"plain error", errors.New("bad s3cret"), codes.InvalidArgument, ""},
		{"backend down", ErrBackendUnavailable, codes.Unavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(configureError(tt.err, scrub))
			if st.Code() != tt.wantCode {
				t.Errorf("code %s, want %s", st.Code(), tt.wantCode)
			}
			if strings.Contains(st.Message(), "s3cret") {
				t.Errorf("message %q holds the secret", st.Message())
			}
			var got string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
					got = br.GetFieldViolations()[0].GetField()
				}
			}
			if got != tt.wantSetting {
				t.Errorf("setting in details %q, want %q", got, tt.wantSetting)
			}
		})
	}
}
