package agent

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetops/fleetops/agent/agentproto"
)

func registerConfig(serverURL string) RegisterConfig {
	return RegisterConfig{
		ServerURL:      serverURL,
		ActivationID:   testActID,
		ActivationCode: testActCode,
		Host:           fakeHost(),
		Now:            func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
}

func TestRegisterSuccess(t *testing.T) {
	g := newFakeGateway(t, false)
	id, err := Register(context.Background(), registerConfig(g.URL()+"/"))
	require.NoError(t, err)
	assert.Equal(t, testInstanceID, id.InstanceID)
	assert.Equal(t, testSecret, id.Secret)
	assert.Equal(t, g.URL(), id.ServerURL, "normalized, no trailing slash")
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), id.RegisteredAt)
	g.mu.Lock()
	assert.Equal(t, fakeHost(), g.lastReg.Host)
	g.mu.Unlock()
}

func TestRegisterRefused(t *testing.T) {
	for _, msg := range []string{"activation expired", "activation registration limit reached", "invalid activation code"} {
		t.Run(msg, func(t *testing.T) {
			g := newFakeGateway(t, false)
			g.refusal = &agentproto.ErrorBody{Code: "ActivationRefused", Message: msg}
			g.refusalStatus = 403
			_, err := Register(context.Background(), registerConfig(g.URL()))
			require.ErrorIs(t, err, ErrRegistrationRefused)
			var re *RefusedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, msg, re.Body.Message)
			assert.Equal(t, 403, re.StatusCode)
			assert.NotContains(t, err.Error(), testActCode)
		})
	}
}

func TestRegisterServerErrorIsNotARefusal(t *testing.T) {
	g := newFakeGateway(t, false)
	g.refusal = &agentproto.ErrorBody{Code: "Internal", Message: "database down"}
	g.refusalStatus = 503
	_, err := Register(context.Background(), registerConfig(g.URL()))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrRegistrationRefused)
	assert.Contains(t, err.Error(), "HTTP 503")
}

func TestRegisterRejectsBadServerAnswer(t *testing.T) {
	// A 404 from something that is not a fleetops server.
	g := newFakeGateway(t, false)
	cfg := registerConfig(g.URL() + "/not-fleetops")
	_, err := Register(context.Background(), cfg)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrRegistrationRefused)
}

func TestRegisterFingerprintPinning(t *testing.T) {
	g := newFakeGateway(t, true)
	leaf := g.srv.Certificate().Raw

	t.Run("right pin", func(t *testing.T) {
		cfg := registerConfig(g.URL())
		cfg.Transport.ServerFingerprint = Fingerprint(leaf)
		id, err := Register(context.Background(), cfg)
		require.NoError(t, err)
		assert.Equal(t, Fingerprint(leaf), id.ServerFingerprint)
	})
	t.Run("right pin, colon and upper-case form", func(t *testing.T) {
		cfg := registerConfig(g.URL())
		hexPart := Fingerprint(leaf)[len("sha256:"):]
		var colon string
		for i := 0; i < len(hexPart); i += 2 {
			if i > 0 {
				colon += ":"
			}
			colon += hexPart[i : i+2]
		}
		cfg.Transport.ServerFingerprint = "SHA256:" + colon
		_, err := Register(context.Background(), cfg)
		require.NoError(t, err)
	})
	t.Run("wrong pin", func(t *testing.T) {
		cfg := registerConfig(g.URL())
		cfg.Transport.ServerFingerprint = Fingerprint([]byte("some other certificate"))
		before := g.registrations.Load()
		_, err := Register(context.Background(), cfg)
		require.ErrorIs(t, err, ErrFingerprintMismatch)
		assert.Equal(t, before, g.registrations.Load(), "request never reached the server")
	})
	t.Run("no pin: self-signed is rejected", func(t *testing.T) {
		_, err := Register(context.Background(), registerConfig(g.URL()))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
	})
	t.Run("CA file", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), 0o600))
		cfg := registerConfig(g.URL())
		cfg.Transport.CAFile = ca
		_, err := Register(context.Background(), cfg)
		require.NoError(t, err)
	})
	t.Run("malformed pin", func(t *testing.T) {
		cfg := registerConfig(g.URL())
		cfg.Transport.ServerFingerprint = "md5:abcd"
		_, err := Register(context.Background(), cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "sha256")
	})
}

func TestPlainHTTPPolicy(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://fleet.example.com", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://127.9.9.9", false, true},
		{"http://localhost:8080/prefix", false, true},
		{"http://[::1]:8080", false, true},
		{"http://fleet.example.com", false, false},
		{"http://10.0.0.1:8080", false, false},
		{"http://localhost.example.com", false, false},
		{"http://fleet.example.com", true, true},
		{"ftp://fleet.example.com", true, false},
		{"fleet.example.com", false, false},
		{"https://user:pw@fleet.example.com", false, false},
	} {
		err := Transport{Insecure: tc.insecure}.CheckURL(tc.url)
		if tc.ok {
			assert.NoError(t, err, tc.url)
		} else {
			assert.Error(t, err, tc.url)
		}
	}
	_, err := Register(context.Background(), registerConfig("http://192.0.2.1:8080"))
	require.ErrorIs(t, err, ErrInsecureTransport)
	err = Transport{ServerFingerprint: Fingerprint([]byte("x"))}.CheckURL("http://127.0.0.1")
	require.Error(t, err, "a pin with plain http is a mistake")
}

func TestRegisterConfigRequiresActivation(t *testing.T) {
	cfg := registerConfig("https://fleet.example.com")
	cfg.ActivationCode = ""
	_, err := Register(context.Background(), cfg)
	require.ErrorContains(t, err, "activation code is required")
}
