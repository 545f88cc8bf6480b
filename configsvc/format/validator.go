package format

import (
	"context"

	"github.com/sluicehq/sluice/configsvc"
)

var _ configsvc.Validator = Validator{}

// Validator is the configsvc.Validator that checks every file a publish
// writes parses as the format of its extension (Validate); deletions are
// not checked. Its error is Validate's *configsvc.ParseError. The zero
// value is ready to use and safe for concurrent use.
type Validator struct{}

// Validate checks each written file of cs in order and returns the first
// error.
func (Validator) Validate(ctx context.Context, r configsvc.Reader, ref configsvc.Ref, cs configsvc.Changeset) error {
	return configsvc.EachFile(validateFile).Validate(ctx, r, ref, cs)
}

func validateFile(_ configsvc.Ref, file string, content []byte) error { return Validate(file, content) }
