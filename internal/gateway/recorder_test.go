package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingStore keeps appended chunks; the bridge's other store calls are
// not used by the recorder.
type recordingStore struct {
	SessionStore
	mu        sync.Mutex
	data      strings.Builder
	truncated bool
}

func (s *recordingStore) AppendRecording(_ context.Context, _, data string, maxBytes int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int64(s.data.Len()+len(data)) > maxBytes {
		s.truncated = true
		return true, nil
	}
	s.data.WriteString(data)
	return false, nil
}

func (s *recordingStore) MarkRecordingTruncated(context.Context, string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncated = true
	return nil
}

// TestRecorderKeepsToTheCap checks that output arriving faster than the
// flush interval is recorded up to the cap in whole lines, not lost in a
// chunk that would cross it, and that the recording is marked truncated.
func TestRecorderKeepsToTheCap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cap       int64
		events    int
		truncated bool
	}{
		{"under the cap", 1 << 20, 100, false},
		{"burst past the cap", 1 << 20, 4000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &recordingStore{}
			b := &SessionBridge{cfg: BridgeConfig{Store: st, RecordingCap: tc.cap, Now: time.Now}, log: slog.New(slog.DiscardHandler)}
			r := newRecorder(b, "s-1", 80, 24, time.Now())
			chunk := []byte(strings.Repeat("x", 1000))
			for range tc.events { // all within one 200 ms flush interval
				r.event("o", chunk)
			}
			r.close()

			st.mu.Lock()
			defer st.mu.Unlock()
			got := st.data.String()
			if int64(len(got)) > tc.cap {
				t.Errorf("stored %d bytes, over the %d cap", len(got), tc.cap)
			}
			lines := strings.Count(got, "\n")
			switch {
			case !strings.HasSuffix(got, "\n"):
				t.Errorf("the recording ends inside a line")
			case !tc.truncated && lines != tc.events+1: // and the header
				t.Errorf("stored %d lines, want %d", lines, tc.events+1)
			case tc.truncated && int64(len(got)) < tc.cap-2*1100: // within a line of the cap
				t.Errorf("stored %d bytes of a %d cap: output was lost before the cap", len(got), tc.cap)
			}
			if st.truncated != tc.truncated {
				t.Errorf("truncated = %v, want %v", st.truncated, tc.truncated)
			}
		})
	}
}
