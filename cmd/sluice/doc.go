// Command sluice is Sluice's one binary: the admin server (sluice server),
// the reverse proxy (sluice proxy) and the command-line client (sluice get,
// put, history, …).
package main

//go:generate go test -run ^TestCLIDocs$ -count=1 . -args -update-docs
