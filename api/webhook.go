package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fleetops/fleetops/internal/store"
)

// Webhook posts audit events to an outside receiver (a SIEM, a chat
// bridge). Bodies are signed: X-Fleetops-Signature is "sha256=" and the hex
// HMAC-SHA256 of the body under Secret, as GitHub signs its webhooks.
type Webhook struct {
	URL    string
	Secret string
	// Client defaults to a client with a 10 s timeout.
	Client *http.Client
	// Attempts per event (default 3), with doubling backoff from 500 ms.
	Attempts int
	Logger   *slog.Logger
}

// WebhookEvent is the body of one delivery.
type WebhookEvent struct {
	Event     string    `json:"event"`
	SessionID string    `json:"sessionId,omitempty"`
	Target    string    `json:"target,omitempty"`
	Owner     string    `json:"owner,omitempty"`
	Actor     string    `json:"actor"`
	Reason    string    `json:"reason,omitempty"`
	SourceIP  string    `json:"sourceIp"`
	Time      time.Time `json:"time"`
	Status    string    `json:"status,omitempty"`
}

// Sign returns the signature header value for body.
func (w *Webhook) Sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(w.Secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Send delivers ev in the background; it never blocks the request.
func (w *Webhook) Send(ev WebhookEvent) {
	if w == nil || w.URL == "" {
		return
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	go w.deliver(body)
}

func (w *Webhook) deliver(body []byte) {
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	attempts := max(w.Attempts, 1)
	if w.Attempts == 0 {
		attempts = 3
	}
	backoff := 500 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if err = w.post(client, body); err == nil {
			return
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	if w.Logger != nil {
		w.Logger.Warn("audit webhook delivery failed", "err", err)
	}
}

func (w *Webhook) post(client *http.Client, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Fleetops-Signature", w.Sign(body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// notify sends a session event to the webhook.
func (s *Server) notify(c *gin.Context, event string, sess store.Session) {
	s.cfg.Webhook.Send(WebhookEvent{
		Event: event, SessionID: sess.SessionID, Target: sess.Target, Owner: sess.Owner, Actor: actor(c),
		Reason: sess.Reason, SourceIP: c.ClientIP(), Time: s.cfg.Now().UTC(), Status: sess.Status,
	})
}
