package zktest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the JVM when the test binary dies, so a
// test killed by its timeout leaves no ZooKeeper behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
