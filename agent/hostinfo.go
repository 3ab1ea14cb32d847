package agent

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// osReleasePaths are read in order; the first one that exists wins
// (os-release(5)).
var osReleasePaths = []string{"/etc/os-release", "/usr/lib/os-release"}

// HostInfo collects the facts about this host that the agent reports at
// registration and in Hello. It is best effort: a fact that cannot be read is
// left empty rather than failing the agent.
func HostInfo() agentproto.HostInfo {
	h := agentproto.HostInfo{
		PlatformType: "Linux",
		Architecture: runtime.GOARCH,
		Kernel:       kernelRelease(),
		IPAddresses:  hostIPs(),
		AgentVersion: Version,
	}
	h.Hostname, _ = os.Hostname()
	if rel, err := readOSRelease(osReleasePaths); err == nil {
		h.PlatformName = rel["NAME"]
		h.PlatformVersion = rel["VERSION_ID"]
	}
	return h
}

func readOSRelease(paths []string) (map[string]string, error) {
	var firstErr error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		defer f.Close()
		return parseOSRelease(f)
	}
	if firstErr == nil {
		firstErr = errors.New("no os-release file")
	}
	return nil, firstErr
}

// parseOSRelease parses os-release(5): KEY=VALUE lines, blank lines and
// '#' comments ignored; values unquoted, 'single-quoted' (literal) or
// "double-quoted" (with \" \\ \$ \` escapes). Malformed lines are skipped, as
// the spec asks of readers.
func parseOSRelease(r io.Reader) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			continue
		}
		v, ok := unquoteOSReleaseValue(strings.TrimSpace(val))
		if !ok {
			continue
		}
		out[key] = v
	}
	return out, sc.Err()
}

func unquoteOSReleaseValue(v string) (string, bool) {
	if v == "" {
		return "", true
	}
	switch q := v[0]; q {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", false
		}
		return v[1 : 1+end], true
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0:
				i++
				b.WriteByte(v[i])
			case c == '"':
				return b.String(), true
			default:
				b.WriteByte(c)
			}
		}
		return "", false // unterminated
	default:
		// Unquoted: up to an inline comment, if any.
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		return v, true
	}
}

// hostIPs lists the unicast addresses of up, non-loopback interfaces,
// skipping loopback and link-local addresses.
func hostIPs() []string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var ips []string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if usableIP(ip) {
				ips = append(ips, ip.String())
			}
		}
	}
	return ips
}

func usableIP(ip net.IP) bool {
	return ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() && !ip.IsMulticast() &&
		!ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast()
}
