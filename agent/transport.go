package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrInsecureTransport is returned for a plain http:// server URL whose host
// is not loopback, unless Transport.Insecure is set.
var ErrInsecureTransport = errors.New("refusing plain http to a non-loopback server (use https, or --insecure)")

// ErrFingerprintMismatch is returned (wrapped in the TLS handshake error) when
// the server's leaf certificate does not match the pinned fingerprint.
var ErrFingerprintMismatch = errors.New("server certificate does not match the pinned fingerprint")

// Transport says how the agent trusts the server. The zero value verifies an
// https server against the system roots and refuses plain http except to
// loopback.
type Transport struct {
	// CAFile is a PEM bundle used instead of the system roots.
	CAFile string
	// ServerFingerprint pins the server's leaf certificate:
	// "sha256:<hex of SHA-256 of the certificate DER>". When set, chain and
	// name validation are skipped and only the pin decides. Colons between
	// hex pairs and upper case are accepted.
	ServerFingerprint string
	// Insecure allows plain http:// to a non-loopback host.
	Insecure bool
}

// Check validates the settings without touching the filesystem.
func (t Transport) Check() error {
	if t.CAFile != "" && t.ServerFingerprint != "" {
		return errors.New("a CA file and a server fingerprint are mutually exclusive")
	}
	if t.ServerFingerprint != "" {
		if _, err := parseFingerprint(t.ServerFingerprint); err != nil {
			return err
		}
	}
	return nil
}

// CheckURL validates the server URL against these settings: http(s) only, no
// plain http to a non-loopback host without Insecure.
func (t Transport) CheckURL(rawURL string) error {
	u, err := parseServerURL(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme == "http" {
		if t.CAFile != "" || t.ServerFingerprint != "" {
			return fmt.Errorf("server %s is plain http: a CA file or fingerprint needs https", u.Redacted())
		}
		if !t.Insecure && !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("server %s: %w", u.Redacted(), ErrInsecureTransport)
		}
	}
	return nil
}

// TLSConfig builds the client TLS configuration. It reads CAFile.
func (t Transport) TLSConfig() (*tls.Config, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case t.ServerFingerprint != "":
		want, _ := parseFingerprint(t.ServerFingerprint) // checked above
		// A pin replaces chain validation (self-signed servers are the
		// point), so skip the standard verification and decide in
		// VerifyConnection, which also runs on resumed sessions.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrFingerprintMismatch
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("%w: got sha256:%x", ErrFingerprintMismatch, got)
			}
			return nil
		}
	case t.CAFile != "":
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// HTTPClient builds an HTTP client using these settings. It has no overall
// timeout (callers use contexts: a WebSocket lives for hours) but bounds the
// dial, TLS handshake and response header wait.
func (t Transport) HTTPClient() (*http.Client, error) {
	tlsCfg, err := t.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// parseFingerprint accepts "sha256:<64 hex>" (colons between pairs allowed).
func parseFingerprint(s string) ([]byte, error) {
	algo, hexPart, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return nil, fmt.Errorf("server fingerprint %q: want sha256:<hex>", s)
	}
	b, err := hex.DecodeString(strings.ToLower(strings.ReplaceAll(hexPart, ":", "")))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("server fingerprint %q: want sha256 followed by 64 hex digits", s)
	}
	return b, nil
}

// Fingerprint formats the pin of a DER certificate as ServerFingerprint
// expects it.
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parseServerURL validates and normalizes a server base URL: http or https,
// a host, no user info, query or fragment; lower-case scheme and host; no
// trailing slash.
func parseServerURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("server URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("server URL: %w", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: scheme must be https or http", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: must not carry user info, query or fragment", u.Redacted())
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// endpoint joins the server base URL and an agentproto path.
func endpoint(base *url.URL, path string) string {
	u := *base
	u.Path = base.Path + path
	return u.String()
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
