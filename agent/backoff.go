package agent

import "time"

// Backoff computes reconnect delays: exponential with full jitter, i.e.
// delay = rand[0, min(Cap, Base*2^attempt)). Full jitter spreads a fleet that
// lost its server at the same instant evenly over the window, so a restarted
// gateway is not hit by every agent at once.
type Backoff struct {
	// Base is the window of the first retry. Default 1s.
	Base time.Duration
	// Cap bounds the window. Default 60s.
	Cap time.Duration
	// Rand returns a uniform value in [0, n) for n > 0. Default
	// math/rand/v2.Int64N. Tests inject a deterministic one.
	Rand func(n int64) int64
}

// Window is the upper bound of the delay for attempt (0-based):
// min(Cap, Base*2^attempt), without overflow.
func (b Backoff) Window(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	w := b.Base
	for i := 0; i < attempt && w < b.Cap; i++ {
		if w > b.Cap/2 {
			return b.Cap
		}
		w *= 2
	}
	return min(w, b.Cap)
}

// Delay is a random delay in [0, Window(attempt)).
func (b Backoff) Delay(attempt int) time.Duration {
	w := b.Window(attempt)
	if w <= 0 {
		return 0
	}
	return time.Duration(b.Rand(int64(w)))
}
