package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseOSRelease(t *testing.T) {
	for _, tc := range []struct {
		name, in         string
		wantName, wantID string
		extra            map[string]string
	}{
		{
			name: "debian",
			in: `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
HOME_URL="https://www.debian.org/"
`,
			wantName: "Debian GNU/Linux", wantID: "12",
			extra: map[string]string{"ID": "debian"},
		},
		{
			name:     "comments, blanks, single quotes, CRLF, spaces",
			in:       "# generated\r\n\r\n  NAME='Ubuntu'\r\nVERSION_ID=\"22.04\"\r\n#VERSION_ID=1\r\nID=ubuntu # trailing comment\r\n",
			wantName: "Ubuntu", wantID: "22.04",
			extra: map[string]string{"ID": "ubuntu"},
		},
		{
			name: "escapes in double quotes",
			in: `NAME="Weird \"Quoted\" \$Linux\\"
VERSION_ID=1.0`,
			wantName: `Weird "Quoted" $Linux\`, wantID: "1.0",
		},
		{
			name: "malformed lines are skipped",
			in: `garbage line
=novalue
NAME="unterminated
BAD KEY=x
NAME=Alpine Linux
VERSION_ID=3.19.1
EMPTY=
`,
			wantName: "Alpine Linux", wantID: "3.19.1",
			extra: map[string]string{"EMPTY": ""},
		},
		{name: "empty", in: "", wantName: "", wantID: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOSRelease(strings.NewReader(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.wantName, got["NAME"])
			assert.Equal(t, tc.wantID, got["VERSION_ID"])
			for k, v := range tc.extra {
				assert.Equal(t, v, got[k], k)
			}
			assert.NotContains(t, got, "BAD KEY")
		})
	}
}

func TestReadOSReleaseFallsBack(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "usr-lib-os-release")
	require.NoError(t, os.WriteFile(lib, []byte("NAME=Fedora Linux\nVERSION_ID=40\n"), 0o644))
	got, err := readOSRelease([]string{filepath.Join(dir, "missing"), lib})
	require.NoError(t, err)
	assert.Equal(t, "Fedora Linux", got["NAME"])

	_, err = readOSRelease([]string{filepath.Join(dir, "missing")})
	require.Error(t, err)
}

func TestHostInfo(t *testing.T) {
	h := HostInfo()
	assert.Equal(t, "Linux", h.PlatformType)
	assert.Equal(t, runtime.GOARCH, h.Architecture)
	assert.Equal(t, Version, h.AgentVersion)
	want, _ := os.Hostname()
	assert.Equal(t, want, h.Hostname)
	if runtime.GOOS == "linux" {
		assert.NotEmpty(t, h.Kernel)
		assert.Regexp(t, `^\d+\.\d+`, h.Kernel)
	}
	for _, ip := range h.IPAddresses {
		assert.NotEqual(t, "127.0.0.1", ip)
		assert.NotEqual(t, "::1", ip)
	}
}
