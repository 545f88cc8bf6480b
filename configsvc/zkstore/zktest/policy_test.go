package zktest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
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
		{name: "skip ignored under CI, missing fails", ci: "true", skip: "1", home: "/nonexistent-zk", want: "fatal", wantMsg: "apt-get install zookeeper"},
		{name: "missing skips with hint", home: "/nonexistent-zk", want: "skip", wantMsg: "apt-get install zookeeper"},
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
