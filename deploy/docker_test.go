package deploy_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerignore reads deploy/docker/Dockerfile.dockerignore (the
// ignore file BuildKit uses for deploy/docker/Dockerfile) as Docker does (moby's ignorefile
// and patternmatcher) and checks that the build context of
// deploy/docker/Dockerfile (`COPY . .`) leaves out the repository, local
// state and secrets, and keeps every file the image build compiles or
// embeds.
func TestDockerignore(t *testing.T) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, "deploy/docker/Dockerfile.dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(path string) bool {
		t.Helper()
		ok, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return ok
	}

	for _, path := range []string{
		".git/config", ".git/objects/pack/pack-1.pack", ".git", // a worktree's .git is a file
		"sluice-data/admin.token", "sluice-data/sluice.db", "sluice-data/demo/zk1/data/version-2/log.1",
		"cmd/sluice/sluice-data/admin.token", // `go run` from a package folder
		"admin.token", "configsvc/boltstore/x.db", "sluice.db",
		".tools/zookeeper/bin/zkServer.sh",
		"bin/sluice", "sluice", "sluice-bench", "test-output/report.xml", "bench.out", "router/router.test",
		".env", "examples/orders/.env", "server.pem", "server.key",
		"deploy/systemd/server.env.example", "docs/operations.md", "Makefile", ".ci/run",
		"configsvc/httpapi/api_test.go", "router/routesfile/testdata/golden.yaml",
	} {
		if !excluded(path) {
			t.Errorf("%s would be sent to the Docker daemon", path)
		}
	}

	// What the build needs: go.mod, go.sum and, for ./cmd/sluice and
	// ./examples/orders, every Go and embedded file of the module's packages.
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`,
		"./cmd/sluice", "./examples/orders")
	cmd.Dir = repoPath(t, "")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, abs := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(repoPath(t, ""), abs)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) < 50 {
		t.Fatalf("go list found only %d files the build needs: %v", len(needed), needed)
	}
	for _, path := range needed {
		if excluded(path) {
			t.Errorf("%s is needed by the image build but left out of the context", path)
		}
	}
}
