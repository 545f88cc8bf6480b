// Package deploy holds no code: its tests check the deployment files beside
// it with the tools that consume them, offline and on loopback only.
//
//   - deploy/prometheus/rules.yml: `promtool check rules`, `promtool test
//     rules` on the committed unit tests and on series scraped from a real
//     admin server and proxy driven by the test (2xx, 4xx, 5xx, an open
//     breaker, the proxy's own 503s), and a real Prometheus server scraping
//     them and evaluating the rules (label upstream_instance, never
//     exported_instance). Debian's prometheus package provides promtool and
//     prometheus (`make prometheus`).
//   - deploy/k8s/*.yaml: every document decoded strictly into the
//     Kubernetes API types (k8s.io/api), unknown fields failing, and no
//     Secret that the docs tell users to create.
//   - deploy/systemd/*.service: `systemd-analyze verify` and `systemd-analyze
//     security --offline=true`, with an exposure threshold.
//   - deploy/docker/Dockerfile.dockerignore: matched with Docker's own rules
//     (github.com/moby/patternmatcher) against what must stay out of a build
//     context (.git, sluice-data, tokens, databases, build output).
//
// A missing promtool, prometheus or systemd-analyze fails the tests under
// CI=true or SLUICE_REQUIRE_TOOLS=1 and skips them otherwise.
package deploy
