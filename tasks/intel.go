package tasks

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// Operations an intel update carries.
const (
	IntelAdd    = "add"
	IntelRemove = "remove"
)

// IntelLifetime is how long nodes accept an intel update after it was
// issued. Intel updates are states, not commands: they merge idempotently
// into a last-writer-wins set, so a late or repeated delivery (anti-entropy,
// an air-gap bundle) can never undo a newer decision and must still be
// accepted years later. Nodes check intel with a policy whose MaxLifetime
// is off; an indicator's own Expires says when it stops matching.
const IntelLifetime = 100 * 365 * 24 * time.Hour

// MaxIntelOps bounds the operations of one update. The 64 KiB envelope
// limit holds far fewer; the bound protects the decoder.
const MaxIntelOps = 10_000

// IntelClock is a hybrid logical clock timestamp, as intel.HLC: wall time
// in nanoseconds since the Unix epoch and a counter within one tick.
type IntelClock struct {
	Wall    int64  `json:"wall"`
	Logical uint32 `json:"logical"`
}

// IntelOp is one add or remove of an indicator in the shared set.
type IntelOp struct {
	// Op is IntelAdd or IntelRemove.
	Op string `json:"op"`

	// IoC is the indicator; a remove needs only its type and value.
	IoC IoC `json:"ioc"`

	// Clock orders this op against every other op on the same indicator.
	Clock IntelClock `json:"clock"`

	// Origin breaks clock ties; nodes require it to be the signer's KeyID.
	Origin string `json:"origin"`
}

// IntelUpdate is a signed batch of intel ops. Nodes keep the original
// envelope, so the analyst's signature travels with the update when it is
// re-sent by anti-entropy or carried in a bundle.
type IntelUpdate struct {
	Header
	Ops []IntelOp `json:"ops"`
}

// DecodeIntel decodes the payload of a checked intel update, refusing
// unknown fields, an empty or oversized op list and unknown operations.
// Indicator values are checked by the intel package when applied.
func DecodeIntel(payload []byte) (*IntelUpdate, error) {
	var u IntelUpdate
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return nil, fmt.Errorf("%w: decode intel update: %w", ErrMalformed, err)
	}
	if u.Type != TypeIntel {
		return nil, fmt.Errorf("%w: payload is a %s, not an intel update", ErrWrongType, u.Type)
	}
	if len(u.Ops) == 0 || len(u.Ops) > MaxIntelOps {
		return nil, fmt.Errorf("%w: intel update %s has %d ops, want 1 to %d", ErrMalformed,
			u.ID, len(u.Ops), MaxIntelOps)
	}
	for i, op := range u.Ops {
		if op.Op != IntelAdd && op.Op != IntelRemove {
			return nil, fmt.Errorf("%w: intel update %s op %d: unknown op %q", ErrMalformed,
				u.ID, i, op.Op)
		}
	}
	return &u, nil
}

// intelEnvelopeSlack is room kept in each sealed update for the header
// and the envelope framing when packing ops.
const intelEnvelopeSlack = 2 << 10

// SealIntel signs ops as one or more intel updates, each an envelope of at
// most maxSize bytes, in op order. header is called for each update and
// returns its header (ID, times, analyst); Type is set here. A single op
// too large for one envelope is refused, naming the indicator.
func SealIntel(priv ed25519.PrivateKey, ops []IntelOp, maxSize int,
	header func() Header) ([][]byte, error) {
	budget := maxSize - intelEnvelopeSlack
	if budget <= 0 {
		return nil, fmt.Errorf("seal intel: max size %d is too small", maxSize)
	}
	var (
		out  [][]byte
		cur  []IntelOp
		size int
	)
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		h := header()
		h.Type = TypeIntel
		raw, err := SealTask(priv, TypeIntel, &IntelUpdate{Header: h, Ops: cur}, maxSize)
		if err != nil {
			return err
		}
		out = append(out, raw)
		cur, size = nil, 0
		return nil
	}
	for i, op := range ops {
		b, err := json.Marshal(op)
		if err != nil {
			return nil, fmt.Errorf("seal intel: encode op %d: %w", i, err)
		}
		if len(b) > budget {
			return nil, fmt.Errorf("%w: %s indicator %.40q is %d bytes encoded, over the %d "+
				"an intel update can carry", ErrTooLarge, op.IoC.Type, op.IoC.Value, len(b), budget)
		}
		if size+len(b)+1 > budget || len(cur) == MaxIntelOps {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		cur = append(cur, op)
		size += len(b) + 1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
