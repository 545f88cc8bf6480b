package access

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/sluicehq/sluice/configsvc"
)

// memRecords is an in-memory configsvc.RecordStore for this package's unit
// tests; the server's tests run against boltstore.
type memRecords struct {
	mu   sync.Mutex
	data map[string]map[string][]byte
	seq  map[string]int64
}

var _ configsvc.RecordStore = (*memRecords)(nil)

func newMemRecords() *memRecords {
	return &memRecords{data: map[string]map[string][]byte{}, seq: map[string]int64{}}
}

func (m *memRecords) Put(_ context.Context, c, id string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[c] == nil {
		m.data[c] = map[string][]byte{}
	}
	m.data[c][id] = append([]byte(nil), data...)
	return nil
}

func (m *memRecords) Create(_ context.Context, c, id string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[c][id]; ok {
		return fmt.Errorf("mem: create %s/%s: %w", c, id, configsvc.ErrConflict)
	}
	if m.data[c] == nil {
		m.data[c] = map[string][]byte{}
	}
	m.data[c][id] = append([]byte(nil), data...)
	return nil
}

func (m *memRecords) Get(_ context.Context, c, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.data[c][id]
	if !ok {
		return nil, fmt.Errorf("mem: get %s/%s: %w", c, id, configsvc.ErrNotFound)
	}
	return d, nil
}

func (m *memRecords) Delete(_ context.Context, c, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[c][id]; !ok {
		return fmt.Errorf("mem: delete %s/%s: %w", c, id, configsvc.ErrNotFound)
	}
	delete(m.data[c], id)
	return nil
}

func (m *memRecords) List(_ context.Context, c string) ([]configsvc.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []configsvc.Record
	for id, d := range m.data[c] {
		out = append(out, configsvc.Record{ID: id, Data: d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memRecords) Append(_ context.Context, c string, data []byte, keep int) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq[c]++
	n := m.seq[c]
	if m.data[c] == nil {
		m.data[c] = map[string][]byte{}
	}
	m.data[c][strconv.FormatInt(n, 10)] = append([]byte(nil), data...)
	if keep > 0 {
		delete(m.data[c], strconv.FormatInt(n-int64(keep), 10))
	}
	return n, nil
}

func (m *memRecords) Scan(_ context.Context, c string, before int64, limit int) ([]configsvc.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var seqs []int64
	for id := range m.data[c] {
		n, _ := strconv.ParseInt(id, 10, 64)
		if before == 0 || n < before {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] > seqs[j] })
	if len(seqs) > limit {
		seqs = seqs[:limit]
	}
	out := make([]configsvc.Record, len(seqs))
	for i, n := range seqs {
		id := strconv.FormatInt(n, 10)
		out[i] = configsvc.Record{ID: id, Data: m.data[c][id]}
	}
	return out, nil
}
