package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetops/fleetops/internal/browsertest"
)

// TestConsoleSession drives Session Manager through the web console in a
// real headless Chromium: start a shell on a real agent from the node page,
// type into xterm.js, resize it, terminate it, find it in the history and
// play its recording back; then terminate a session from the list.
func TestConsoleSession(t *testing.T) {
	s, a := startSessionStack(t, stackOptions{dialect: "sqlite", heartbeat: "1s", connectionLostAfter: "3s"})
	target := a.instanceID

	b := browsertest.New(t)
	b.Navigate(s.url + "/#/login?token=" + s.token)

	// The node page links to the start form, with the node chosen.
	b.Navigate(s.url + "/#/instances/" + target)
	b.Click("#instance-session")
	b.WaitVisible("#session-start")
	eventually(t, 10*time.Second, "target picker lists the node", func() error {
		if got := browsertest.Eval[string](b, `(document.querySelector("#session-target") || {}).value || ""`); got != target {
			return fmt.Errorf("target %q", got)
		}
		return nil
	})
	b.SetValue("#session-reason", "console e2e")
	b.Click("#session-start")

	b.WaitVisible(`#terminal-page[data-state="connected"]`)
	id := browsertest.Eval[string](b, `document.querySelector("#terminal-page").dataset.sessionId`)
	if hash := browsertest.Eval[string](b, `location.hash`); hash != "#/sessions/"+id+"/terminal" {
		t.Errorf("terminal URL %q: want the session's page, with no stream token in it", hash)
	}
	if sess := s.session(t, id); sess.Target != target {
		t.Errorf("session %+v, want target %s", sess, target)
	}

	// Keystrokes go in through xterm's own input element, as typing does.
	typeInto := func(text string) {
		t.Helper()
		browsertest.Eval[bool](b, fmt.Sprintf(`(() => {
			const ta = document.querySelector("#terminal .xterm-helper-textarea");
			ta.focus();
			return ta.dispatchEvent(new InputEvent("input", {data: %q, inputType: "insertText", bubbles: true}));
		})()`, text))
	}
	const screen = "#terminal .xterm-rows"
	typeInto("echo con''sole-ok\r")
	b.WaitText(screen, "console-ok")

	// Truecolour output renders in colour without a CSP violation.
	typeInto(`printf '\033[38;2;255;0;0mtrue''colour\033[0m\n'` + "\r")
	b.WaitText(screen, "truecolour")
	if !browsertest.Eval[bool](b, `[...document.querySelectorAll("#terminal .xterm-rows span")]
		.some((s) => s.textContent.includes("truecolour") && s.style.color !== "")`) {
		t.Error("truecolour text has no colour")
	}

	// A smaller terminal is fitted and the shell learns its new size.
	rowsBefore := b.Count("#terminal .xterm-rows > div")
	browsertest.Eval[bool](b, `(document.getElementById("terminal").style.height = "240px", true)`)
	var rows int
	eventually(t, 10*time.Second, "terminal refitted", func() error {
		if rows = b.Count("#terminal .xterm-rows > div"); rows >= rowsBefore {
			return fmt.Errorf("%d rows, had %d", rows, rowsBefore)
		}
		return nil
	})
	typeInto("echo si''ze=$(stty size)\r")
	b.WaitText(screen, fmt.Sprintf("size=%d ", rows))

	// Terminate ends the session and the page says so.
	b.Click("#session-terminate")
	b.WaitVisible(`#terminal-page[data-state="ended"]`)
	b.WaitText("#session-status", "Session ended")
	eventually(t, 15*time.Second, "session terminated", func() error {
		if st := s.session(t, id).Status; st != "Terminated" {
			return fmt.Errorf("status %s", st)
		}
		return nil
	})

	// The history lists it with its recording, which plays the output back.
	b.Navigate(s.url + "/#/sessions?state=History")
	row := fmt.Sprintf(`#sessions tr[data-session-id=%q][data-status="Terminated"]`, id)
	b.WaitVisible(row + " a.session-recording")
	b.WaitText(row, "console e2e")
	b.Click(row + " a.session-recording")
	b.WaitVisible(`#recording-player[data-state="ready"]`)
	browsertest.Eval[bool](b, `(() => {
		const s = document.querySelector("#recording-speed");
		s.value = "8";
		return s.dispatchEvent(new Event("change"));
	})()`)
	b.Click("#recording-play")
	b.WaitText("#recording-player .xterm-rows", "console-ok")
	b.WaitVisible(`#recording-player[data-state="ended"]`)

	// An active session can be terminated from the list.
	var other struct {
		Session struct{ SessionID string }
	}
	if err := s.apiJSON("POST", "/v1/sessions", map[string]any{"target": target, "reason": "from the list"}, &other); err != nil {
		t.Fatal(err)
	}
	b.Navigate(s.url + "/#/sessions")
	otherRow := fmt.Sprintf(`#sessions tr[data-session-id=%q]`, other.Session.SessionID)
	b.WaitVisible(otherRow + " button.session-terminate")
	b.Click(otherRow + " button.session-terminate")
	eventually(t, 15*time.Second, "listed session terminated", func() error {
		if n := b.Count(otherRow); n != 0 {
			return fmt.Errorf("still listed as active")
		}
		if st := s.session(t, other.Session.SessionID).Status; st != "Terminated" && st != "Failed" {
			return fmt.Errorf("status %s", st)
		}
		return nil
	})

	// Leaving the terminal page closes the session (FrameClose), as
	// closing a terminal window would.
	b.Navigate(s.url + "/#/sessions/new?target=" + target)
	b.WaitVisible("#session-start")
	eventually(t, 10*time.Second, "target picker lists the node", func() error {
		if got := browsertest.Eval[string](b, `(document.querySelector("#session-target") || {}).value || ""`); got != target {
			return fmt.Errorf("target %q", got)
		}
		return nil
	})
	b.Click("#session-start")
	b.WaitVisible(`#terminal-page[data-state="connected"]`)
	left := browsertest.Eval[string](b, `document.querySelector("#terminal-page").dataset.sessionId`)
	b.Navigate(s.url + "/#/sessions")
	eventually(t, 15*time.Second, "session closed on leaving its page", func() error {
		if st := s.session(t, left).Status; st != "Terminated" {
			return fmt.Errorf("status %s", st)
		}
		return nil
	})

	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
