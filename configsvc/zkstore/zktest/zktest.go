package zktest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore/zkversion"
)

// Timing and sizing of the servers the harness starts.
const (
	// TickTime is the ZooKeeper tick of every server the harness starts.
	TickTime = 200 * time.Millisecond
	// MinSessionTimeout is the shortest session the servers grant (2 ticks);
	// clients asking for less get this.
	MinSessionTimeout = 400 * time.Millisecond
	// MaxSessionTimeout is the longest session the servers grant.
	MaxSessionTimeout = 60 * time.Second

	// startTimeout bounds the wait for a JVM to serve; generous because the
	// machine running the tests may be busy.
	startTimeout = 60 * time.Second
	// startAttempts: a free port found by the harness can be taken by another
	// process before the JVM binds it; the start is then retried on new ports.
	startAttempts = 3
)

const installHint = "install it with `make zookeeper` (ZooKeeper 3.9.3 into .tools/zookeeper) or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper release; " +
	"set SLUICE_SKIP_ZOOKEEPER=1 to skip ZooKeeper tests"

// Server is one ZooKeeper server process started by the harness: a
// standalone server from Start, or one node of an Ensemble.
//
// Its methods are safe for concurrent use, but the ones that can fail the
// test (Stop, Restart, and Kill, Pause and Resume on a process that cannot be
// signalled) call t.Fatal and so must run on the test's goroutine.
type Server struct {
	t      testing.TB
	launch launcher
	dir    string // holds zoo.cfg, data/, zk.log, zk.out
	port   int    // client port
	id     int    // myid in an ensemble; 0 for standalone
	modes  []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	paused bool
}

// Start starts a standalone ZooKeeper server on a free 127.0.0.1 port, waits
// until it serves, and registers a cleanup that kills it. It skips or fails
// the test when ZooKeeper is not installed (see the package doc).
func Start(t testing.TB) *Server {
	t.Helper()
	l := find(t)
	base := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			t.Fatalf("zktest: %v", err)
		}
		dir := filepath.Join(base, fmt.Sprintf("standalone-%d", attempt))
		s := &Server{t: t, launch: l, dir: dir, port: ports[0], modes: []string{"standalone"}}
		if err := s.writeConfig(nil); err != nil {
			t.Fatalf("zktest: %v", err)
		}
		t.Cleanup(s.cleanup)
		if err := s.start(); err != nil {
			t.Fatalf("zktest: %v", err)
		}
		err = s.waitServing(startTimeout)
		if err == nil {
			return s
		}
		lastErr = err
		s.kill()
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("zktest: standalone ZooKeeper did not start: %v", lastErr)
	return nil
}

// Addr returns the server's client address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Servers returns []string{s.Addr()}, the shape zk.Connect and
// zkstore.Config.Servers take.
func (s *Server) Servers() []string { return []string{s.Addr()} }

// Dir returns the directory holding the server's zoo.cfg, data directory and
// logs (zk.log, zk.out).
func (s *Server) Dir() string { return s.dir }

// Kill kills the server with SIGKILL and waits for the process to end, as a
// crash would. Its data directory and port are kept for Restart. Killing a
// stopped server does nothing.
func (s *Server) Kill() { s.kill() }

// Stop stops the server with SIGTERM, escalating to SIGKILL after 10 s, and
// waits for the process to end. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	paused := s.paused
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		s.kill()
	}
	s.mu.Lock()
	s.cmd, s.paused = nil, false
	s.mu.Unlock()
}

// Restart starts the server again on the same port and data directory and
// waits until it serves (for an ensemble node: until it has joined a quorum).
// A running server is stopped first. It fails the test if the server does
// not come back within 60 s.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < startAttempts; attempt++ {
		if err = s.start(); err != nil {
			s.t.Fatalf("zktest: restart %s: %v", s.name(), err)
		}
		if err = s.waitServing(startTimeout); err == nil {
			return
		}
		s.kill()
		if !errors.Is(err, errExited) {
			break
		}
		// The old process's port may still be held for a moment.
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("zktest: restart %s: %v", s.name(), err)
}

// Pause freezes the server process with SIGSTOP: connections stay open but
// nothing is answered, so clients lose their connection. Resume undoes it.
// Whether a session survives depends on whether the client's reconnect or
// the server's expiry sweep runs first after Resume; to expire a session
// deterministically, cut its connection with a proxy instead.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume continues a server frozen by Pause with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

// Running reports whether the server process is alive (paused counts as alive).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Mode returns the server's mode as its four-letter-word command srvr reports
// it ("standalone", "leader", "follower"), or "" when it does not answer.
func (s *Server) Mode() string {
	out, err := FourLetterWord(s.Addr(), "srvr", time.Second)
	if err != nil {
		return ""
	}
	return parseMode(out)
}

func (s *Server) name() string {
	if s.id == 0 {
		return "standalone ZooKeeper " + s.Addr()
	}
	return fmt.Sprintf("ZooKeeper node %d (%s)", s.id, s.Addr())
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("zktest: %s is not running", s.name())
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("zktest: signal %v to %s: %v", sig, s.name(), err)
	}
	if sig == syscall.SIGSTOP {
		// The signal is delivered to each thread in turn: a request that
		// arrives meanwhile could still be served. Pause returns once
		// every thread is stopped.
		waitStopped(s.cmd.Process.Pid, 5*time.Second)
	}
	s.paused = paused
}

// waitStopped waits until every thread of process pid is stopped (state T
// in /proc), for up to timeout; without /proc it returns at once.
func waitStopped(pid int, timeout time.Duration) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		stopped := true
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			if err != nil {
				continue // the thread ended
			}
			// pid (comm) state …: comm may hold spaces and parentheses.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.paused = nil, false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// cleanup kills the process and, when the test failed, logs the end of the
// server's log so the failure can be understood.
func (s *Server) cleanup() {
	s.kill()
	if s.t.Failed() {
		if tail := tailFile(filepath.Join(s.dir, "zk.log"), 15); tail != "" {
			s.t.Logf("zktest: last lines of %s log:\n%s", s.name(), tail)
		}
	}
}

var errExited = errors.New("ZooKeeper process exited")

func (s *Server) start() error {
	logOut, err := os.OpenFile(filepath.Join(s.dir, "zk.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := s.launch.command(s.dir)
	cmd.Stdout, cmd.Stderr = logOut, logOut
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logOut.Close()
		return fmt.Errorf("start %s: %w", s.launch.java, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logOut.Close()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()
	return nil
}

// waitServing polls srvr until the server reports one of s.modes.
func (s *Server) waitServing(timeout time.Duration) error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%w before serving; log:\n%s", errExited, s.logTail())
		default:
		}
		if out, err := FourLetterWord(s.Addr(), "srvr", time.Second); err == nil {
			last = strings.TrimSpace(firstLine(out))
			mode := parseMode(out)
			for _, m := range s.modes {
				if mode == m {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not serving after %v (last answer %q); log:\n%s", s.name(), timeout, last, s.logTail())
}

func (s *Server) logTail() string {
	return tailFile(filepath.Join(s.dir, "zk.log"), 10) + tailFile(filepath.Join(s.dir, "zk.out"), 10)
}

// writeConfig writes zoo.cfg and, for an ensemble node, data/myid. peers
// holds "server.N=…" lines (nil for standalone).
func (s *Server) writeConfig(peers []string) error {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "tickTime=%d\n", TickTime.Milliseconds())
	fmt.Fprintf(&b, "initLimit=25\nsyncLimit=10\n")
	fmt.Fprintf(&b, "dataDir=%s\n", data)
	fmt.Fprintf(&b, "clientPort=%d\nclientPortAddress=127.0.0.1\n", s.port)
	fmt.Fprintf(&b, "minSessionTimeout=%d\nmaxSessionTimeout=%d\n", MinSessionTimeout.Milliseconds(), MaxSessionTimeout.Milliseconds())
	b.WriteString("admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n")
	// 1 MiB log preallocation instead of 64 MiB; no fsync (see the package doc).
	b.WriteString("preAllocSize=1024\nforceSync=no\n")
	for _, p := range peers {
		b.WriteString(p + "\n")
	}
	if s.id > 0 {
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(s.id)+"\n"), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(s.dir, "zoo.cfg"), b.Bytes(), 0o644)
}

// launcher knows how to run the ZooKeeper JVM.
type launcher struct {
	java      string
	classpath string
	simpleLog bool              // slf4j-simple is on the classpath: configure its log file
	where     string            // where ZooKeeper was found, for messages
	version   zkversion.Version // from the jar's name; zero when unknown
}

func (l launcher) command(dir string) *exec.Cmd {
	args := []string{
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:-UsePerfData",
		"-Djava.net.preferIPv4Stack=true",
		"-Dzookeeper.jmx.log4j.disable=true",
		"-Dzookeeper.admin.enableServer=false",
		// Quorum connections to a dead peer time out fast, so elections after
		// a kill take well under a second.
		"-Dzookeeper.cnxTimeout=1000",
	}
	if l.simpleLog {
		args = append(args,
			"-Dorg.slf4j.simpleLogger.logFile="+filepath.Join(dir, "zk.log"),
			"-Dorg.slf4j.simpleLogger.showDateTime=true",
			"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS")
	} else {
		args = append(args, "-Dzookeeper.log.dir="+dir, "-Dzookeeper.log.file=zk.log")
	}
	args = append(args, "-cp", l.classpath,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(dir, "zoo.cfg"))
	cmd := exec.Command(l.java, args...)
	cmd.Dir = dir
	return cmd
}

// find locates java and ZooKeeper, applying the skip/require policy of the
// package doc.
func find(t testing.TB) launcher {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv("SLUICE_SKIP_ZOOKEEPER") == "1" {
		t.Skip("zktest: SLUICE_SKIP_ZOOKEEPER=1: skipping a test that needs ZooKeeper")
	}
	l, err := locate()
	if err != nil {
		if ci || os.Getenv("SLUICE_REQUIRE_ZOOKEEPER") == "1" {
			t.Fatalf("zktest: ZooKeeper is required here (CI=true or SLUICE_REQUIRE_ZOOKEEPER=1) but %v; %s", err, installHint)
		}
		t.Skipf("zktest: skipping, ZooKeeper not available: %v; %s", err, installHint)
	}
	if msg, fatal := l.unsafe(ci, os.Getenv("ZOOKEEPER_HOME") != ""); fatal {
		t.Fatalf("zktest: %s", msg)
	} else if msg != "" {
		t.Logf("zktest: WARNING: %s", msg)
	}
	return l
}

// unsafe applies the policy on releases with known data-loss bugs: a version
// chosen on purpose through ZOOKEEPER_HOME runs (that is how an upgrade or a
// regression is tested), with a warning; a fallback to an unsafe system
// package fails under CI. msg is empty when the version is not known bad.
func (l launcher) unsafe(ci, homeSet bool) (msg string, fatal bool) {
	if l.version == (zkversion.Version{}) {
		return "", false
	}
	reason, bad := zkversion.KnownDataLoss(l.version)
	if !bad {
		return "", false
	}
	if ci && !homeSet {
		return "only " + l.where + " was found: " + reason + "; " + installHint, true
	}
	return reason + " (from " + l.where + ")", false
}

func locate() (launcher, error) {
	var l launcher
	java := "java"
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		java = filepath.Join(jh, "bin", "java")
	}
	path, err := exec.LookPath(java)
	if err != nil {
		return l, fmt.Errorf("no java runtime found (%v)", err)
	}
	l.java = path
	if home := os.Getenv("ZOOKEEPER_HOME"); home != "" {
		return l.release(home, "ZOOKEEPER_HOME="+home)
	}
	if root := repoRoot(); root != "" {
		if home := filepath.Join(root, ToolsDir); hasJars(home) {
			return l.release(home, home)
		}
	}
	const debianJar = "/usr/share/java/zookeeper.jar"
	if _, err := os.Stat(debianJar); err != nil {
		return l, fmt.Errorf("ZOOKEEPER_HOME is unset, %s is not installed and %s is missing", ToolsDir, debianJar)
	}
	// zookeeper.jar's manifest names its dependencies; only a logging
	// binding needs adding.
	cp := []string{debianJar}
	if _, err := os.Stat("/usr/share/java/slf4j-simple.jar"); err == nil {
		cp = append(cp, "/usr/share/java/slf4j-simple.jar")
		l.simpleLog = true
	} else if _, err := os.Stat("/usr/share/java/slf4j-log4j12.jar"); err == nil {
		cp = append(cp, "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar", "/etc/zookeeper/conf")
	}
	l.classpath = strings.Join(cp, string(os.PathListSeparator))
	l.where = "Debian's zookeeper package"
	if target, err := filepath.EvalSymlinks(debianJar); err == nil {
		l.version, _ = zkversion.Parse(filepath.Base(target))
	}
	return l, nil
}

// ToolsDir is where `make zookeeper` installs a ZooKeeper release, relative
// to the repository root; the harness uses it when ZOOKEEPER_HOME is unset.
const ToolsDir = ".tools/zookeeper"

// release sets l up for a folder laid out like an Apache release (lib/*.jar,
// conf/). The zookeeper-jute jars come first: a Debian-built zookeeper.jar
// names /usr/share/java/zookeeper-jute.jar in its manifest, and the class
// loader reads a jar's manifest class path right after the jar, so an older
// jute installed there would otherwise shadow the release's own.
func (l launcher) release(home, what string) (launcher, error) {
	jars, _ := filepath.Glob(filepath.Join(home, "lib", "*.jar"))
	top, _ := filepath.Glob(filepath.Join(home, "zookeeper-*.jar"))
	jars = append(jars, top...)
	if len(jars) == 0 {
		return l, fmt.Errorf("%s holds no lib/*.jar", what)
	}
	sort.SliceStable(jars, func(i, j int) bool {
		return strings.Contains(filepath.Base(jars[i]), "jute") && !strings.Contains(filepath.Base(jars[j]), "jute")
	})
	for _, j := range jars {
		b := filepath.Base(j)
		if strings.HasPrefix(b, "slf4j-simple") {
			l.simpleLog = true
		}
		if v, err := zkversion.Parse(b); err == nil && strings.HasPrefix(b, "zookeeper-") && !strings.Contains(b, "jute") {
			l.version = v
		}
	}
	l.classpath = strings.Join(append([]string{filepath.Join(home, "conf")}, jars...), string(os.PathListSeparator))
	l.where = what
	return l, nil
}

func hasJars(home string) bool {
	jars, _ := filepath.Glob(filepath.Join(home, "lib", "zookeeper-*.jar"))
	return len(jars) > 0
}

// repoRoot returns the folder holding go.mod above the working directory
// (a test runs in its package's folder), or "".
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The listeners
// are held until all n are found so the ports differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FourLetterWord sends a ZooKeeper four-letter-word command (srvr, mntr,
// cons, …) to addr and returns the answer, within timeout.
func FourLetterWord(addr, cmd string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return zkversion.FourLetterWord(ctx, addr, cmd)
}

func parseMode(srvr string) string {
	sc := bufio.NewScanner(strings.NewReader(srvr))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
