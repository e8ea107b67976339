package tasks

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// Policy holds the limits a node applies to incoming tasks.
type Policy struct {
	// MaxSize caps an envelope in bytes. Gossip carries only small
	// messages; gossipsub silently drops anything over 1 MiB, so tasks are
	// held far below that. Default 64 KiB.
	MaxSize int

	// ClockSkew is how far in the future a task's IssuedAt may lie, to
	// allow for clocks that disagree. Default 2 minutes.
	ClockSkew time.Duration

	// MaxLifetime caps NotAfter - IssuedAt, so a leaked task cannot be
	// replayed for months. Default 7 days.
	MaxLifetime time.Duration
}

// DefaultPolicy returns the limits described on Policy.
func DefaultPolicy() Policy {
	return Policy{MaxSize: 64 << 10, ClockSkew: 2 * time.Minute, MaxLifetime: 7 * 24 * time.Hour}
}

// Checked is a task that passed Policy.Check: signature, trust, role,
// size and validity window.
type Checked struct {
	Envelope *Envelope
	Signer   TrustEntry
	Header   Header
}

// Check opens raw and decides whether a node may act on it at time now:
// the signature verifies, the signer is trusted with the role for the
// task's type, the payload's header agrees with the envelope, and now lies
// within the task's validity window. Replay is the caller's to check
// against its store of seen IDs (ErrReplay).
func (p Policy) Check(raw []byte, trust *Trust, now time.Time) (*Checked, error) {
	env, err := Open(raw, p.MaxSize)
	if err != nil {
		return nil, err
	}
	if env.Type == TypeResult {
		return nil, fmt.Errorf("%w: a result is not a task", ErrWrongType)
	}

	// Trust comes before decoding: an untrusted payload is never parsed.
	signer, ok := trust.Lookup(env.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key %s", ErrUntrusted, env.SignerID())
	}
	if !signer.Allows(env.Type) {
		return nil, fmt.Errorf("%w: key %s (%s) may not issue %s", ErrRole,
			env.SignerID(), signer.Name, env.Type)
	}

	var h Header
	if err := json.Unmarshal(env.Payload, &h); err != nil {
		return nil, fmt.Errorf("%w: decode header: %w", ErrMalformed, err)
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if h.Type != env.Type {
		return nil, fmt.Errorf("%w: envelope says %s, payload says %s", ErrWrongType, env.Type, h.Type)
	}

	switch {
	case now.After(h.NotAfter):
		return nil, fmt.Errorf("%w: not after %s", ErrExpired, h.NotAfter.Format(time.RFC3339))
	case h.IssuedAt.After(now.Add(p.ClockSkew)):
		return nil, fmt.Errorf("%w: issued at %s, beyond the %s clock-skew bound", ErrNotYetValid,
			h.IssuedAt.Format(time.RFC3339), p.ClockSkew)
	case p.MaxLifetime > 0 && h.NotAfter.Sub(h.IssuedAt) > p.MaxLifetime:
		return nil, fmt.Errorf("%w: %s exceeds %s", ErrLifetime, h.NotAfter.Sub(h.IssuedAt), p.MaxLifetime)
	}
	return &Checked{Envelope: env, Signer: signer, Header: h}, nil
}

// validate checks the header fields every task needs.
func (h Header) validate() error {
	switch {
	case h.ID == "" || len(h.ID) > 64:
		return fmt.Errorf("task id %q: want 1 to 64 characters", h.ID)
	case h.IssuedAt.IsZero() || h.NotAfter.IsZero():
		return fmt.Errorf("task %s: issued_at and not_after are required", h.ID)
	case !h.NotAfter.After(h.IssuedAt):
		return fmt.Errorf("task %s: not_after is not after issued_at", h.ID)
	case len(h.ReplyTo) > 128:
		return fmt.Errorf("task %s: reply_to too long", h.ID)
	}
	if err := h.Selector.Validate(); err != nil {
		return fmt.Errorf("task %s: %w", h.ID, err)
	}
	return nil
}

// DecodeHunt decodes the payload of a checked hunt, refusing unknown
// fields so that a typo in a hand-made task is not silently ignored.
func DecodeHunt(payload []byte) (*Hunt, error) {
	var h Hunt
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: decode hunt: %w", ErrMalformed, err)
	}
	if h.Type != TypeHunt {
		return nil, fmt.Errorf("%w: payload is a %s, not a hunt", ErrWrongType, h.Type)
	}
	return &h, nil
}

// SealTask encodes task (a Hunt or another task struct embedding Header)
// and signs it, refusing it when the envelope would exceed maxSize.
func SealTask(priv ed25519.PrivateKey, typ string, task any, maxSize int) ([]byte, error) {
	payload, err := json.Marshal(task)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	raw, err := Seal(priv, typ, payload)
	if err != nil {
		return nil, err
	}
	if maxSize > 0 && len(raw) > maxSize {
		return nil, fmt.Errorf("%w: the %s is %d bytes, the limit is %d", ErrTooLarge, typ, len(raw), maxSize)
	}
	return raw, nil
}

// SealResult signs a result with a node's key.
func SealResult(priv ed25519.PrivateKey, r *Result) ([]byte, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return Seal(priv, TypeResult, payload)
}

// OpenResult verifies and decodes a result envelope. The caller must check
// that the signer is the node the result claims to come from.
func OpenResult(raw []byte, maxSize int) (*Envelope, *Result, error) {
	env, err := Open(raw, maxSize)
	if err != nil {
		return nil, nil, err
	}
	if env.Type != TypeResult {
		return nil, nil, fmt.Errorf("%w: want a result, got a %s", ErrWrongType, env.Type)
	}
	var r Result
	if err := json.Unmarshal(env.Payload, &r); err != nil {
		return nil, nil, fmt.Errorf("%w: decode result: %w", ErrMalformed, err)
	}
	if r.TaskID == "" || r.Node == "" {
		return nil, nil, fmt.Errorf("%w: result lacks task_id or node", ErrMalformed)
	}
	return env, &r, nil
}
