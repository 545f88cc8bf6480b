//go:build !linux

package zktest

import "os/exec"

// setProcAttr does nothing outside Linux: there is no parent-death signal,
// so only the test's cleanup stops the JVM.
func setProcAttr(cmd *exec.Cmd) {}
