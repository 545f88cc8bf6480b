package schema_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/sluicehq/sluice/configsvc"
)

// memTree is a Tree of files held in memory.
type memTree map[string]string

func (m memTree) Files() []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (m memTree) Has(name string) bool { _, ok := m[name]; return ok }

func (m memTree) Read(_ context.Context, name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, configsvc.ErrNotFound)
	}
	return []byte(s), nil
}

func (m memTree) Sum(_ context.Context, name string) (string, bool) {
	s, ok := m[name]
	return configsvc.Checksum([]byte(s)), ok
}
