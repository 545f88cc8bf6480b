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

// Validate checks each written file of cs in order (ValidateContext: it
// stops when ctx ends) and returns the first error.
func (Validator) Validate(ctx context.Context, _ configsvc.Reader, _ configsvc.Ref, cs configsvc.Changeset) error {
	for _, c := range cs.Changes {
		if c.Delete {
			continue
		}
		if err := ValidateContext(ctx, c.File, c.Content); err != nil {
			return err
		}
	}
	return nil
}
