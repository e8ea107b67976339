package intel

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// setMagic opens an encoded set; the trailing byte is the format version.
const setMagic = "hmintel\x01"

// encodeUpdate appends the canonical encoding of u to b: fixed field order,
// length-prefixed strings, so equal updates encode to equal bytes.
func encodeUpdate(b []byte, u Update) []byte {
	op := byte(1)
	if u.Op == OpRemove {
		op = 2
	}
	b = append(b, op)
	b = binary.AppendVarint(b, u.Clock.Wall)
	b = binary.AppendUvarint(b, uint64(u.Clock.Logical))
	b = appendString(b, u.Origin)
	b = appendString(b, u.IoC.Type)
	b = appendString(b, u.IoC.Value)
	b = appendString(b, u.IoC.Severity)
	b = appendString(b, u.IoC.Source)
	b = binary.AppendUvarint(b, uint64(len(u.IoC.Tags)))
	for _, t := range u.IoC.Tags {
		b = appendString(b, t)
	}
	b = appendTime(b, u.IoC.FirstSeen)
	return appendTime(b, u.IoC.Expires)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads what encodeUpdate wrote, failing on any short or
// oversized field.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoded, what)
	}
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what)
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time(what string) time.Time {
	switch d.byte1(what) {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint(what)
		nsec := d.uvarint(what)
		if nsec >= 1e9 {
			d.fail(what)
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.fail(what)
	return time.Time{}
}

// update reads one update; maxTags bounds the tag count before allocating.
func (d *decoder) update(maxTags int) Update {
	var u Update
	switch d.byte1("op") {
	case 1:
		u.Op = OpAdd
	case 2:
		u.Op = OpRemove
	default:
		d.fail("op")
	}
	u.Clock.Wall = d.varint("clock")
	l := d.uvarint("clock")
	if l > 1<<32-1 {
		d.fail("clock")
	}
	u.Clock.Logical = uint32(l)
	u.Origin = d.str("origin")
	u.IoC = tasks.IoC{Type: d.str("type"), Value: d.str("value"),
		Severity: d.str("severity"), Source: d.str("source")}
	n := d.uvarint("tags")
	if n > uint64(maxTags) {
		d.fail("tags")
		return u
	}
	for range n {
		u.IoC.Tags = append(u.IoC.Tags, d.str("tag"))
	}
	u.IoC.FirstSeen = d.time("first_seen")
	u.IoC.Expires = d.time("expires")
	return u
}

// MarshalBinary encodes the set's full state for persistence.
func (s *Set) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := []byte(setMagic)
	b = binary.AppendUvarint(b, uint64(len(s.elems)))
	for _, k := range s.sortedKeysLocked() {
		b = append(b, s.elems[k].enc...)
	}
	return b, nil
}

// UnmarshalBinary replaces the set's state with an encoded one. Every state
// is validated as Apply would; on any error the set is left unchanged.
// The loaded states all take the next local version.
func (s *Set) UnmarshalBinary(data []byte) error {
	s.mu.Lock()
	lim := s.lim
	s.mu.Unlock()
	if lim.MaxIoCs == 0 {
		lim = DefaultSetLimits()
	}

	if len(data) < len(setMagic) || string(data[:len(setMagic)]) != setMagic {
		return fmt.Errorf("decode intel set: %w: bad magic", ErrBadEncoded)
	}
	d := &decoder{b: data[len(setMagic):]}
	n := d.uvarint("count")
	if d.err == nil && n > uint64(lim.MaxIoCs) {
		return fmt.Errorf("decode intel set: %w: %d states", ErrSetFull, n)
	}
	tmp := NewSetLimits(lim)
	for i := uint64(0); i < n && d.err == nil; i++ {
		u := d.update(lim.MaxTags)
		if d.err != nil {
			break
		}
		if _, err := tmp.Apply(u); err != nil {
			return fmt.Errorf("decode intel set: state %d: %w", i, err)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("decode intel set: %w", d.err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim = lim
	s.version++
	s.digestOK = false
	s.elems = tmp.elems
	s.held = tmp.held
	for _, e := range s.elems {
		e.seq = s.version
		if e.u.Op == OpAdd {
			e.added = s.version
		}
	}
	return nil
}
