package zkstore

import (
	"sync"

	"github.com/sluicehq/sluice/configsvc"
)

// pruneNotes remembers, for the revisions a store published itself, what
// pruning would otherwise read back from their revision nodes: the files
// each wrote (a content node each); and, per service or group, the
// manifest at the revision the last prune stopped at, which is where the
// next one starts. With them a prune step reads one revision node (the
// manifest it keeps) instead of one per revision it removes. Revisions
// another server published, or published before this store opened, are
// read as before.
//
// Notes carry the epoch of the head they were taken under (headDoc.Epoch),
// so none is ever used for a service deleted and created again. At most
// maxPruneNotes revisions are noted; past that, pruning reads. Noted slices
// and maps are never modified. Safe for concurrent use.
type pruneNotes struct {
	mu    sync.Mutex
	refs  map[configsvc.Ref]*refNotes
	count int // noted revisions, over all refs
}

type refNotes struct {
	epoch   string
	written map[int64][]string // revision → files it wrote
	keptAt  int64              // the revision kept holds the manifest of
	kept    map[string]int64
}

func newPruneNotes() *pruneNotes {
	return &pruneNotes{refs: map[configsvc.Ref]*refNotes{}}
}

// of returns ref's notes under epoch, replacing notes of another epoch;
// nil when there is no room for a new ref.
func (pn *pruneNotes) of(ref configsvc.Ref, epoch string) *refNotes {
	rn := pn.refs[ref]
	if rn != nil && rn.epoch == epoch {
		return rn
	}
	if rn != nil {
		pn.count -= len(rn.written)
	} else if len(pn.refs) >= maxCachedHeads {
		return nil
	}
	rn = &refNotes{epoch: epoch, written: map[int64][]string{}}
	pn.refs[ref] = rn
	return rn
}

// published notes that revision n of ref, under epoch, wrote the files of
// changes.
func (pn *pruneNotes) published(ref configsvc.Ref, epoch string, n int64, changes []configsvc.Change) {
	if epoch == "" {
		return
	}
	var files []string
	for _, c := range changes {
		if !c.Delete {
			files = append(files, c.File)
		}
	}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if pn.count >= maxPruneNotes {
		return
	}
	if rn := pn.of(ref, epoch); rn != nil {
		if _, ok := rn.written[n]; !ok {
			pn.count++
		}
		rn.written[n] = files
	}
}

// batch returns what is noted for pruning revisions [from, to) of ref
// under epoch: the files of the noted revisions (a map the caller owns),
// and the manifest at from when known.
func (pn *pruneNotes) batch(ref configsvc.Ref, epoch string, from, to int64) (map[int64][]string, map[string]int64) {
	out := map[int64][]string{}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	rn := pn.refs[ref]
	if rn == nil || rn.epoch != epoch || epoch == "" {
		return out, nil
	}
	for n := from; n < to; n++ {
		if files, ok := rn.written[n]; ok {
			out[n] = files
		}
	}
	if rn.keptAt == from {
		return out, rn.kept
	}
	return out, nil
}

// pruned notes that ref, under epoch, is pruned below to, whose manifest
// is keep, and drops the notes of the revisions below it.
func (pn *pruneNotes) pruned(ref configsvc.Ref, epoch string, to int64, keep map[string]int64) {
	if epoch == "" {
		return
	}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	rn := pn.of(ref, epoch)
	if rn == nil {
		return
	}
	for n := range rn.written {
		if n < to {
			delete(rn.written, n)
			pn.count--
		}
	}
	rn.keptAt, rn.kept = to, keep
}

// forget drops ref's notes (it was deleted).
func (pn *pruneNotes) forget(ref configsvc.Ref) {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if rn := pn.refs[ref]; rn != nil {
		pn.count -= len(rn.written)
		delete(pn.refs, ref)
	}
}
