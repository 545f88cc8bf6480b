package breaker

// StateOf is state, for the tests that hold the adapter to gobreaker.
var StateOf = state
