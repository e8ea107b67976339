package tasks

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a fresh task ID: a ULID, so IDs sort by issue time.
func NewID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// CheckID reports whether id is a task ID as NewID makes them (a ULID),
// optionally with the /run/K or /chain/NAME suffix of a derived task.
func CheckID(id string) error {
	if _, err := ulid.ParseStrict(BaseID(id)); err != nil {
		return fmt.Errorf("task ID %q: want a ULID such as %s: %w", id,
			"01J2Z3X4Y5W6V7T8S9R0QPNMKJ", err)
	}
	return nil
}
