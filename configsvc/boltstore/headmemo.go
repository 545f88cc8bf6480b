package boltstore

import (
	"bytes"
	"sync"

	"github.com/sluicehq/sluice/configsvc"
)

// maxMemoHeads bounds the decoded heads a store keeps.
const maxMemoHeads = 4096

// headMemo keeps, per service or group, the head record a publish last
// wrote, encoded and decoded, so that the next publish skips decoding it:
// it compares the stored bytes with the remembered ones (exact, whoever
// wrote them) and decodes only when they differ. The decoded records are
// shared and never modified.
type headMemo struct {
	mu sync.Mutex
	m  map[configsvc.Ref]memoHead
}

type memoHead struct {
	data []byte
	head headRecord
}

func newHeadMemo() *headMemo { return &headMemo{m: map[configsvc.Ref]memoHead{}} }

// decode returns the head record stored as data.
func (hm *headMemo) decode(ref configsvc.Ref, data []byte) (headRecord, error) {
	hm.mu.Lock()
	e, ok := hm.m[ref]
	hm.mu.Unlock()
	if ok && bytes.Equal(e.data, data) {
		return e.head, nil
	}
	return decodeHead(data)
}

// remember keeps h, stored as data (which the memo now owns).
func (hm *headMemo) remember(ref configsvc.Ref, data []byte, h headRecord) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if _, ok := hm.m[ref]; !ok && len(hm.m) >= maxMemoHeads {
		for k := range hm.m { // evict one entry, any
			delete(hm.m, k)
			break
		}
	}
	hm.m[ref] = memoHead{data: data, head: h}
}
