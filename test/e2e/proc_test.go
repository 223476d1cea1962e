package e2e

// Child processes of the suite: each in its own process group, its output in a
// log file under the run directory (kept for debugging) and a tail in memory
// for failure reports. Every process is killed when the test binary dies
// (Pdeathsig), and its pid is written to a file the wrapper script reads to kill
// anything left over.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one started child process.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error

	mu   sync.Mutex
	tail []string // last lines
}

const tailLines = 400

func (p *proc) addLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tail) >= tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, line)
}

// Tail returns the last n lines the process printed.
func (p *proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	from := 0
	if len(p.tail) > n {
		from = len(p.tail) - n
	}
	return strings.Join(p.tail[from:], "\n")
}

func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after grace.
func (p *proc) Stop(grace time.Duration) {
	if p == nil || p.cmd.Process == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// Kill9 sends SIGKILL to the process group and waits for the exit.
func (p *proc) Kill9() {
	if p == nil || p.cmd.Process == nil || p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// startProc starts bin with args, logging to <dir>/<name>.log. It does not wait
// for readiness (see waitFor).
func startProc(dir, name, bin string, args, env []string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: cannot start %s: %w", name, bin, err)
	}
	recordPid(cmd.Process.Pid, name)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4<<20)
		w := bufio.NewWriter(f)
		for sc.Scan() {
			line := sc.Text()
			w.WriteString(line)
			w.WriteByte('\n')
			if w.Buffered() > 32*1024 {
				w.Flush()
			}
			p.addLine(line)
		}
		w.Flush()
		f.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		<-readerDone
		close(p.done)
	}()
	return p, nil
}

// pid file: one "pid name" line per started process, for the wrapper script.
var pidMu sync.Mutex

func recordPid(pid int, name string) {
	path := os.Getenv("E2E_PID_FILE")
	if path == "" {
		return
	}
	pidMu.Lock()
	defer pidMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%d %s\n", pid, name)
}

// waitFor polls cond every interval until it returns true, the process exits
// (if p is non-nil) or timeout passes. The error says which, with the last
// cond error and the process's tail.
func waitFor(what string, p *proc, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s: %s exited (%v) while waiting; last error: %v; its output:\n%s", what, p.name, p.err, last, p.Tail(40))
		}
		if time.Now().After(deadline) {
			extra := ""
			if p != nil {
				extra = fmt.Sprintf("; %s printed:\n%s", p.name, p.Tail(40))
			}
			return fmt.Errorf("%s: not done after %s; last error: %v%s", what, timeout, last, extra)
		}
		time.Sleep(interval)
	}
}
