package intel

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClockDrift is returned by Clock.Observe for a remote timestamp too far
// ahead of the local wall clock.
var ErrClockDrift = errors.New("remote clock too far ahead")

// HLC is a hybrid logical clock timestamp: wall time in nanoseconds since
// the Unix epoch, and a counter that orders events within one wall tick.
// Timestamps from one Clock strictly increase, and a clock that observed a
// timestamp only issues later ones, so causally later updates win in the
// set without any node trusting another's wall clock for more than MaxDrift.
type HLC struct {
	// Wall is nanoseconds since the Unix epoch.
	Wall int64 `json:"wall"`

	// Logical orders timestamps that share a Wall value.
	Logical uint32 `json:"logical"`
}

// Compare returns -1, 0 or 1 as h is before, equal to or after o.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return 0
}

// IsZero reports whether h is the zero timestamp.
func (h HLC) IsZero() bool { return h == HLC{} }

// String renders h as wall time and counter.
func (h HLC) String() string {
	return fmt.Sprintf("%s+%d", time.Unix(0, h.Wall).UTC().Format(time.RFC3339Nano), h.Logical)
}

// MaxDrift is how far ahead of the local wall clock Observe accepts a
// remote timestamp. A minute covers poorly synced hosts; more would let
// one bad clock pin its updates over everyone's for that long.
const MaxDrift = time.Minute

// Clock issues HLC timestamps. It is safe for concurrent use.
type Clock struct {
	// wall is the physical clock; tests inject their own.
	wall func() time.Time

	mu   sync.Mutex
	last HLC // guarded by mu: the latest timestamp issued or observed
}

// NewClock returns a clock reading wall, or time.Now when wall is nil.
func NewClock(wall func() time.Time) *Clock {
	if wall == nil {
		wall = time.Now
	}
	return &Clock{wall: wall}
}

// Now returns a timestamp later than any this clock issued or observed.
func (c *Clock) Now() HLC {
	pt := c.wall().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.last.Wall {
		c.last = HLC{Wall: pt}
	} else {
		c.last.Logical++
		if c.last.Logical == 0 {
			// Counter wrapped within one tick: borrow a nanosecond.
			c.last.Wall++
		}
	}
	return c.last
}

// Observe folds a remote timestamp into the clock so that later Now calls
// order after it. A timestamp more than MaxDrift ahead of the local wall
// clock is refused and not folded in.
func (c *Clock) Observe(remote HLC) error {
	pt := c.wall().UnixNano()
	if remote.Wall-pt > int64(MaxDrift) {
		return fmt.Errorf("observe %s: %w by %s", remote, ErrClockDrift,
			time.Duration(remote.Wall-pt))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote.Compare(c.last) > 0 {
		c.last = remote
	}
	return nil
}
