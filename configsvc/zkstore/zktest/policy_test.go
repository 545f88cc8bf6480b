package zktest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc/zkstore/zkversion"
)

// recordTB records how find ended the test instead of ending the real one.
type recordTB struct {
	testing.TB
	outcome string // "skip", "fatal" or "" (found)
	msg     string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Skip(args ...any) {
	r.outcome, r.msg = "skip", fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Skipf(f string, args ...any) {
	r.outcome, r.msg = "skip", fmt.Sprintf(f, args...)
	runtime.Goexit()
}
func (r *recordTB) Fatalf(f string, args ...any) {
	r.outcome, r.msg = "fatal", fmt.Sprintf(f, args...)
	runtime.Goexit()
}

func TestFindPolicy(t *testing.T) {
	tests := []struct {
		name                    string
		ci, require, skip, home string
		javaHome                string
		want                    string
		wantMsg                 string
	}{
		{name: "skip requested", skip: "1", want: "skip", wantMsg: "SLUICE_SKIP_ZOOKEEPER"},
		{name: "skip ignored under CI, missing fails", ci: "true", skip: "1", home: "/nonexistent-zk", want: "fatal", wantMsg: "make zookeeper"},
		{name: "missing skips with hint", home: "/nonexistent-zk", want: "skip", wantMsg: "make zookeeper"},
		{name: "missing fails when required", require: "1", home: "/nonexistent-zk", want: "fatal", wantMsg: "ZOOKEEPER_HOME=/nonexistent-zk"},
		{name: "missing java fails under CI", ci: "true", javaHome: "/nonexistent-java", want: "fatal", wantMsg: "no java runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("SLUICE_REQUIRE_ZOOKEEPER", tt.require)
			t.Setenv("SLUICE_SKIP_ZOOKEEPER", tt.skip)
			t.Setenv("ZOOKEEPER_HOME", tt.home)
			if tt.javaHome != "" {
				t.Setenv("JAVA_HOME", tt.javaHome)
			}
			r := &recordTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				find(r)
			}()
			<-done
			if r.outcome != tt.want || !strings.Contains(r.msg, tt.wantMsg) {
				t.Fatalf("outcome %q %q, want %q containing %q", r.outcome, r.msg, tt.want, tt.wantMsg)
			}
		})
	}
}

func TestReleaseLayout(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"commons-cli.jar", "slf4j-simple.jar", "zookeeper-3.9.3.jar", "zookeeper-jute-3.9.3.jar"} {
		if err := os.WriteFile(filepath.Join(home, "lib", j), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := launcher{}.release(home, home)
	if err != nil {
		t.Fatal(err)
	}
	cp := strings.Split(l.classpath, string(os.PathListSeparator))
	// conf first, then the jute jar before zookeeper.jar (whose Debian
	// manifest would pull in an older jute right after it).
	if cp[0] != filepath.Join(home, "conf") || filepath.Base(cp[1]) != "zookeeper-jute-3.9.3.jar" {
		t.Fatalf("class path %v: want conf, then the jute jar first", cp)
	}
	if l.version != (zkversion.Version{Major: 3, Minor: 9, Patch: 3}) || !l.simpleLog {
		t.Fatalf("version %v simpleLog %v, want 3.9.3 and true", l.version, l.simpleLog)
	}
}

func TestUnsafeVersionPolicy(t *testing.T) {
	old := launcher{version: zkversion.Version{Major: 3, Minor: 8, Patch: 0}, where: "Debian's zookeeper package"}
	fixed := launcher{version: zkversion.Version{Major: 3, Minor: 9, Patch: 3}, where: ToolsDir}
	tests := []struct {
		name       string
		l          launcher
		ci, home   bool
		wantFatal  bool
		wantPhrase string
	}{
		{name: "fixed release runs quietly", l: fixed, ci: true},
		{name: "unsafe fallback fails under CI", l: old, ci: true, wantFatal: true, wantPhrase: "make zookeeper"},
		{name: "unsafe fallback warns locally", l: old, wantPhrase: "ZOOKEEPER-4643"},
		{name: "unsafe version chosen through ZOOKEEPER_HOME runs under CI", l: old, ci: true, home: true, wantPhrase: "3.8.0"},
		{name: "unknown version runs", l: launcher{where: "somewhere"}, ci: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, fatal := tt.l.unsafe(tt.ci, tt.home)
			if fatal != tt.wantFatal || (tt.wantPhrase == "") != (msg == "") || !strings.Contains(msg, tt.wantPhrase) {
				t.Fatalf("unsafe() = %q, %v; want fatal %v and a message with %q", msg, fatal, tt.wantFatal, tt.wantPhrase)
			}
		})
	}
}
