// Package browsertest drives a real headless Chromium for console tests.
//
// It uses Debian's chromium (FLEETOPS_CHROMIUM overrides the path) with a
// fresh profile per test and no network beyond what the page asks for. A
// missing browser fails the test: the console is part of the product.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Timeout bounds each browser action.
const Timeout = 30 * time.Second

// Browser is one headless Chromium tab bound to a test.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// ExecPath finds Chromium: $FLEETOPS_CHROMIUM, then chromium or
// chromium-browser on PATH.
func ExecPath() (string, error) {
	if p := os.Getenv("FLEETOPS_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (apt-get install chromium, or set FLEETOPS_CHROMIUM)")
}

// New starts Chromium for t and closes it when t ends.
func New(t testing.TB) *Browser {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, ctx: ctx}
	// Console starts the browser and subscribes before the first page loads.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.record(m.String())
			}
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-done
	})
	b.run("start " + path)
	return b
}

func (b *Browser) record(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, msg)
}

// ConsoleErrors returns the uncaught exceptions and console.error calls seen
// so far.
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *Browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v (page errors: %q)", what, err, b.ConsoleErrors())
	}
}

// Navigate loads url and waits for the document to be ready.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.run("navigate "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(selector string) {
	b.t.Helper()
	b.run("wait for "+selector, chromedp.WaitVisible(chromedp.CSS(selector)))
}

// WaitText waits until the first element matching selector has text
// containing want.
func (b *Browser) WaitText(selector, want string) {
	b.t.Helper()
	var last string
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, Timeout)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, selector)))
		cancel()
		if err == nil && strings.Contains(got, want) {
			return
		}
		last = got
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("browser: %s has text %q, want it to contain %q (page errors: %q)", selector, last, want, b.ConsoleErrors())
}

// Text returns the visible text of the first element matching selector.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return value(b, "text of "+selector, chromedp.Text(chromedp.CSS(selector), chromedp.NodeVisible))
}

// Count returns how many elements match selector now.
func (b *Browser) Count(selector string) int {
	b.t.Helper()
	return Eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, selector))
}

// Eval evaluates a JavaScript expression and decodes its value as T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	return value(b, "eval "+expr, chromedp.Evaluate[T](expr))
}

func value[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v (page errors: %q)", what, err, b.ConsoleErrors())
	}
	return v
}

// Click clicks the first element matching selector.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	b.run("click "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// SetValue replaces the value of the input matching selector by typing it.
func (b *Browser) SetValue(selector, v string) {
	b.t.Helper()
	b.run("type into "+selector, chromedp.Clear(chromedp.CSS(selector)), chromedp.SendKeys(chromedp.CSS(selector), v))
}

// Screenshot writes a PNG of the viewport to path, for debugging failures.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png := value(b, "screenshot", chromedp.CaptureScreenshot())
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("write screenshot: %v", err)
	}
}
