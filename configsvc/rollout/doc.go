// Package rollout drives the progressive rollouts of grays (issue 13,
// docs/gray.md): a Driver moves each gray's percent through its rollout's
// steps, waits until the cohort applied it, bakes it while checking the
// gates (acks from the instances' reports, traffic from the proxies'
// per-instance counters in configsvc.ProxyState), abandons the gray with
// the failed gate recorded, or promotes it after the last step baked
// clean. Its state lives in the gray, so a Driver that starts (another
// server taking over, a restarted one) continues from the recorded step.
// Exactly one Driver drives at a time: it campaigns through a
// configsvc.Leader first.
//
// The package holds domain logic over small interfaces (Store, Leader, a
// clock); cmd/sluice wires it to the store the admin server uses.
package rollout
