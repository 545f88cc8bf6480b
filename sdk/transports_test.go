package sdk_test

import "testing"

// transports lists every transport the behaviour tests run against.
var transports = []struct {
	name string
	mk   func(t *testing.T) *env
}{
	{"store", mustBolt},
	{"zookeeper", mustZK},
	{"http", mustHTTP},
	{"shared", mustShared},
	{"shared-http", mustSharedHTTP},
}
