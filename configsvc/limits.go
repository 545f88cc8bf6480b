package configsvc

import "time"

// Limits of the domain (SPEC §2–3). Each is defined here once; the stores,
// the admin API, the SDK and the proxy refer to these names. Input over a
// limit is refused with a *LimitError (ErrTooLarge) or, for names, a
// *FieldError (ErrInvalid) naming the limit.
const (
	// MaxNameLen is the longest service or shared group name, in bytes
	// (and the longest grant pattern, which matches such names).
	MaxNameLen = 63
	// MaxFileNameLen is the longest config file name, instance id and
	// record collection or id, in bytes.
	MaxFileNameLen = 128

	// MaxFileSize is the largest content of one config file: 512 KiB.
	MaxFileSize = 512 << 10
	// MaxChangesetSize is the largest total content of one publish: 900 KiB,
	// below ZooKeeper's default jute.maxbuffer of 1 MiB.
	MaxChangesetSize = 900 << 10
	// MaxFilesPerChangeset bounds the changes of one publish.
	MaxFilesPerChangeset = 200
	// MaxMessageLen bounds a revision message, in bytes.
	MaxMessageLen = 4096
	// DefaultRetention is how many revisions per service or group are kept
	// when a store is opened with Retention 0.
	DefaultRetention = 500
	// MaxRetention is the largest retention a store accepts: it bounds the
	// revisions (and so the ZooKeeper children of revisions/ and content/)
	// a service or group keeps.
	MaxRetention = 10000
	// MaxFilesPerService bounds the files of one service or shared group
	// at its head (CheckServiceFiles, 413): at most 4096 names of at most
	// MaxFileNameLen bytes, so that a ZooKeeper listing of a manifest
	// stays well under one packet (docs/zookeeper-layout.md).
	MaxFilesPerService = 4096
	// DefaultMaxServiceBytes bounds the total content of the files of one
	// service or shared group at its head (CheckServiceBytes) when the
	// admin server is not given another limit: 16 MiB. Every SDK of the
	// service holds that much in memory and in its cache.
	DefaultMaxServiceBytes = 16 << 20

	// MaxServices bounds the services, and separately the shared groups,
	// of one store: Store.Create refuses more with a *CountError
	// (ErrTooMany). Names are at most MaxNameLen bytes, so listing them
	// all fits in one ZooKeeper packet.
	MaxServices = 10000
	// MaxLinksPerService bounds the shared groups one service links to
	// (Store.Link, *CountError); the links travel in the service's head.
	MaxLinksPerService = 256
	// MaxInstancesPerService bounds the live instances of one service in a
	// store (Store.Register, *CountError). The admin server's own
	// --max-instances-per-service is at most this.
	MaxInstancesPerService = 4096
	// MaxRecordsPerCollection bounds the records of one Put collection
	// (RecordStore.Put and Create of a new id, *CountError): ids are at
	// most MaxFileNameLen bytes, so a listing fits in one ZooKeeper
	// packet. Append collections are bounded by their keep instead.
	MaxRecordsPerCollection = 4096

	// MaxRecordSize is the largest record a RecordStore keeps, and the
	// largest encoded instance registration: 64 KiB.
	MaxRecordSize = 64 << 10
	// MaxAddrLen bounds an instance's address, in bytes.
	MaxAddrLen = 256
	// MaxLabels bounds an instance's labels.
	MaxLabels = 64
	// MaxInstanceErrorLen bounds the reason an instance reports for a
	// rejected revision, in bytes; the SDK truncates longer reasons.
	MaxInstanceErrorLen = 1024

	// MaxPageSize is the largest page one listing returns: Store.Revisions,
	// RecordStore.Scan and the admin API's lists.
	MaxPageSize = 1000
	// DefaultRevisionsPage is Store.Revisions' page size for a limit of 0.
	DefaultRevisionsPage = 50
	// DefaultScanPage is RecordStore.Scan's page size for a limit of 0.
	DefaultScanPage = 100
	// DefaultAppendKeep is how many entries RecordStore.Append retains in a
	// collection for a keep of 0.
	DefaultAppendKeep = 100000

	// MaxViolations bounds the schema violations one refusal lists
	// (SchemaError); more are counted, not listed.
	MaxViolations = 100

	// MaxEchoLen bounds how much of an offending value an error message
	// repeats (FieldError.Value), in bytes.
	MaxEchoLen = 80

	// Gray releases (gray.go). The head of a service carries the
	// selector of every active gray, so selectors and their count are
	// bounded tightly.

	// MaxGrayNameLen bounds a gray's name, in bytes.
	MaxGrayNameLen = 128
	// MaxActiveGrays bounds the active grays of one service or group.
	MaxActiveGrays = 16
	// MaxEndedGrays is how many ended (promoted or abandoned) grays a
	// service or group keeps listed; the oldest are dropped beyond it.
	MaxEndedGrays = 100
	// MaxGrayInstances bounds the instance ids of a selector.
	MaxGrayInstances = 256
	// MaxGrayLabelMaps bounds the label maps of a selector.
	MaxGrayLabelMaps = 16
	// MaxGrayLabelsPerMap bounds the labels of one selector label map.
	MaxGrayLabelsPerMap = 16
	// MaxGrayLabelLen bounds a selector label key or value, in bytes.
	MaxGrayLabelLen = 128
	// MaxSelectorSize bounds a selector's JSON encoding: 8 KiB.
	MaxSelectorSize = 8 << 10
	// MaxInstanceGrays bounds the grays an instance reports about
	// (Instance.Grays).
	MaxInstanceGrays = 64
	// MaxRolloutSteps bounds the steps of a rollout.
	MaxRolloutSteps = 20
	// MaxRolloutBake bounds one step's bake time.
	MaxRolloutBake = 7 * 24 * time.Hour
	// MaxRolloutApplyTimeout bounds a rollout's apply timeout.
	MaxRolloutApplyTimeout = 24 * time.Hour
	// DefaultRolloutApplyTimeout is a rollout's apply timeout when it
	// names none.
	DefaultRolloutApplyTimeout = time.Minute
)

// Limits are the counts a Store bounds (docs/zookeeper-layout.md lists
// them with what they keep within one ZooKeeper packet). The zero value of
// a field means its constant (MaxServices, MaxLinksPerService,
// MaxInstancesPerService, MaxRecordsPerCollection), which is also the
// largest value a store accepts: a lower limit is for tests and small
// deployments. A count over its limit is refused with a *CountError
// (ErrTooMany).
type Limits struct {
	// Services bounds the services, and separately the shared groups.
	Services int
	// LinksPerService bounds the shared groups one service links to.
	LinksPerService int
	// InstancesPerService bounds the live instances of one service.
	InstancesPerService int
	// RecordsPerCollection bounds the records of one Put collection.
	RecordsPerCollection int
}

// Resolve returns l with each zero field set to its constant, or a
// *FieldError (ErrInvalid) naming the first field that is negative or over
// its constant.
func (l Limits) Resolve() (Limits, error) {
	for _, f := range []struct {
		name string
		v    *int
		max  int
	}{
		{"Services", &l.Services, MaxServices},
		{"LinksPerService", &l.LinksPerService, MaxLinksPerService},
		{"InstancesPerService", &l.InstancesPerService, MaxInstancesPerService},
		{"RecordsPerCollection", &l.RecordsPerCollection, MaxRecordsPerCollection},
	} {
		switch {
		case *f.v == 0:
			*f.v = f.max
		case *f.v < 0 || *f.v > f.max:
			return l, &FieldError{Field: "limits." + f.name, Value: itoa(int64(*f.v)), Msg: "must be 1 to " + itoa(int64(f.max)) + " (0 means " + itoa(int64(f.max)) + ")"}
		}
	}
	return l, nil
}
