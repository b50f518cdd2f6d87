package pluginhost

import (
	"strings"
	"testing"
)

// A long TMPDIR once made every plugin fail to bind its socket.
func TestSocketConfig(t *testing.T) {
	tests := []struct {
		tmp  string
		want string // "" means go-plugin's default
	}{
		{"/tmp", ""},
		{"/var/folders/xy/abcdefghijklmnop/T", ""},
		{"/tmp/" + strings.Repeat("x", 90), "/tmp"},
	}
	for _, tc := range tests {
		got := socketConfig(tc.tmp)
		if (got == nil && tc.want != "") || (got != nil && got.TempDir != tc.want) {
			t.Errorf("socketConfig(%d-byte dir) = %+v, want TempDir %q", len(tc.tmp), got, tc.want)
		}
	}
}
