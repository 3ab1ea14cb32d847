//go:build linux

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/creack/pty"

	"github.com/fleetops/fleetops/agent/agentproto"
)

// sessionPath is the PATH of a session before its login scripts run.
const sessionPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ptySpec is what startPTY runs.
type ptySpec struct {
	path       string
	args       []string
	env        []string
	dir        string
	user       string
	cred       *syscall.Credential // nil: the agent's own user
	cols, rows int
}

// runAs is a resolved session user.
type runAs struct {
	name, home, shell string
	cred              *syscall.Credential
}

// shellSpec resolves the run-as user and builds the command of a shell
// (a login shell, the user's from /etc/passwd) or command (/bin/sh -c)
// session.
func (m *SessionManager) shellSpec(ctx context.Context, o agentproto.OpenSession) (ptySpec, error) {
	u, err := m.resolveRunAs(ctx, o.RunAsUser)
	if err != nil {
		return ptySpec{}, err
	}
	spec := ptySpec{
		user: u.name,
		cred: u.cred,
		cols: o.Cols,
		rows: o.Rows,
		dir:  "/",
		env: []string{
			"HOME=" + u.home, "USER=" + u.name, "LOGNAME=" + u.name, "SHELL=" + u.shell,
			"TERM=xterm-256color", "PATH=" + sessionPath,
		},
	}
	if lang, ok := os.LookupEnv("LANG"); ok {
		spec.env = append(spec.env, "LANG="+lang)
	}
	if st, err := os.Stat(u.home); err == nil && st.IsDir() {
		spec.dir = u.home
	}
	if spec.cols <= 0 {
		spec.cols = defaultCols
	}
	if spec.rows <= 0 {
		spec.rows = defaultRows
	}
	spec.cols, spec.rows = min(spec.cols, maxTermDimension), min(spec.rows, maxTermDimension)
	switch o.Kind {
	case agentproto.SessionCommand:
		spec.path, spec.args = "/bin/sh", []string{"sh", "-c", o.Command}
	default:
		// argv[0] "-bash" makes it a login shell, as login(1) and sshd do.
		spec.path, spec.args = u.shell, []string{"-" + filepath.Base(u.shell)}
	}
	return spec, nil
}

// resolveRunAs picks the session's OS user. As root: RunAsUser, which must
// exist, or the session user, created if missing; root only with
// AllowRootSessions. Not as root: the agent's own user; a RunAsUser naming
// anybody else is refused.
func (m *SessionManager) resolveRunAs(ctx context.Context, requested string) (runAs, error) {
	if !m.isRoot {
		cur, err := user.Current()
		if err != nil {
			return runAs{}, fmt.Errorf("look up the agent's user: %w", err)
		}
		if requested != "" && requested != cur.Username {
			return runAs{}, fmt.Errorf("cannot run the session as %q: the agent does not run as root, so sessions run as %q", requested, cur.Username)
		}
		return runAs{name: cur.Username, home: cur.HomeDir, shell: loginShell(cur.Username)}, nil
	}
	name := requested
	if name == "" {
		name = m.cfg.SessionUser
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && requested == "" {
		u, err = m.createSessionUser(ctx, name)
	}
	if errors.As(err, &unknown) {
		return runAs{}, fmt.Errorf("run-as user %q does not exist on this node", name)
	}
	if err != nil {
		return runAs{}, fmt.Errorf("look up run-as user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("run-as user %q has a non-numeric uid or gid", name)
	}
	if uid == 0 && !m.cfg.AllowRootSessions {
		return runAs{}, fmt.Errorf("sessions as %q (uid 0) are not allowed on this node (the agent runs without --allow-root-sessions)", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return runAs{name: u.Username, home: u.HomeDir, shell: loginShell(u.Username), cred: cred}, nil
}

// createSessionUser creates the default session user: a home, bash, no
// sudo rights.
func (m *SessionManager) createSessionUser(ctx context.Context, name string) (*user.User, error) {
	m.userMu.Lock()
	defer m.userMu.Unlock()
	if u, err := user.Lookup(name); err == nil { // another session made it
		return u, nil
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		useradd = "/usr/sbin/useradd"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, useradd, "--create-home", "--shell", "/bin/bash", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("create session user %q: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	m.log.Info("created the session user", "user", name)
	return user.Lookup(name)
}

// loginShell is the user's shell from /etc/passwd (os/user does not report
// it), /bin/sh if there is none.
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/bin/sh"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 && fields[0] == name && fields[6] != "" {
			return fields[6]
		}
	}
	return "/bin/sh"
}

// ptyProc is a process running on a PTY's slave side.
type ptyProc struct {
	cmd    *exec.Cmd
	master *os.File // non-blocking, in the runtime poller
	done   chan struct{}
}

// startPTY starts spec in a new session whose controlling terminal is a
// fresh PTY of the given size.
func startPTY(spec ptySpec) (terminal, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	defer tty.Close()
	master, err := pollable(ptmx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = master.Close()
		}
	}()
	if err := pty.Setsize(tty, &pty.Winsize{Cols: uint16(spec.cols), Rows: uint16(spec.rows)}); err != nil {
		return nil, fmt.Errorf("set pty size: %w", err)
	}
	if spec.cred != nil {
		// As sshd does: the user owns their terminal (mesg, write, ...).
		gid := -1
		if g, err := user.LookupGroup("tty"); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
		_ = os.Chown(tty.Name(), int(spec.cred.Uid), gid)
		_ = os.Chmod(tty.Name(), 0o620)
	}
	cmd := &exec.Cmd{
		Path: spec.path, Args: spec.args, Env: spec.env, Dir: spec.dir,
		Stdin: tty, Stdout: tty, Stderr: tty,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Credential: spec.cred},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ok = true
	p := &ptyProc{cmd: cmd, master: master, done: make(chan struct{})}
	return p, nil
}

// pollable returns a non-blocking copy of f in the runtime poller and
// closes f. creack/pty leaves the master in blocking mode (it calls Fd()),
// where a Read stuck on a terminal that a background job holds open could
// never be interrupted; in the poller, Close and read deadlines work.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	syscall.ForkLock.RLock()
	fd, err := syscall.Dup(int(f.Fd()))
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("dup pty: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("pty non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (p *ptyProc) Read(b []byte) (int, error)  { return p.master.Read(b) }
func (p *ptyProc) Write(b []byte) (int, error) { return p.master.Write(b) }
func (p *ptyProc) pid() int                    { return p.cmd.Process.Pid }
func (p *ptyProc) close() error                { return p.master.Close() }

func (p *ptyProc) drainBy(t time.Time) {
	if err := p.master.SetReadDeadline(t); err != nil {
		time.AfterFunc(time.Until(t), func() { _ = p.master.Close() })
	}
}

// resize sets the window size on the master (through the poller's raw
// conn, keeping it non-blocking); the kernel sends SIGWINCH.
func (p *ptyProc) resize(cols, rows int) error {
	rc, err := p.master.SyscallConn()
	if err != nil {
		return err
	}
	ws := pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("resize pty: %w", errno)
	}
	return nil
}

// wait must be called exactly once.
func (p *ptyProc) wait() agentproto.Exit {
	_ = p.cmd.Wait()
	close(p.done)
	exit := agentproto.Exit{Code: exitCode(p.cmd.ProcessState)}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		exit.Signal = signalName(ws.Signal())
	}
	return exit
}

// terminate hangs up the session: SIGHUP to the shell's process group and
// every process of its terminal session (job-control shells put each job
// in a group of its own), then SIGKILL to whatever is left after grace.
func (p *ptyProc) terminate(grace time.Duration) {
	sid := p.pid()
	p.signal(sid, syscall.SIGHUP)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			if len(sessionMembers(sid)) == 0 {
				return
			}
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.signal(sid, syscall.SIGKILL)
}

func (p *ptyProc) signal(sid int, sig syscall.Signal) {
	select {
	case <-p.done: // reaped: the pid may be reused, only the session scan is safe
	default:
		_ = syscall.Kill(-sid, sig)
	}
	for _, pid := range sessionMembers(sid) {
		_ = syscall.Kill(pid, sig)
	}
}

// sessionMembers lists the live processes whose session ID is sid, from
// /proc/<pid>/stat (fields after the command: state ppid pgrp session).
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 4 || f[0] == "Z" {
			continue
		}
		if n, err := strconv.Atoi(f[3]); err == nil && n == sid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalName names the common signals as the shell does.
func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGILL: "SIGILL", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS",
		syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}
