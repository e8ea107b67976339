package tasks

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Errors returned when opening and checking envelopes. Callers branch on
// them with errors.Is to count refusals by reason.
var (
	ErrMalformed    = errors.New("malformed envelope")
	ErrTooLarge     = errors.New("message too large")
	ErrBadSignature = errors.New("bad signature")
	ErrUntrusted    = errors.New("signer not in trust file")
	ErrRole         = errors.New("signer lacks the role for this task type")
	ErrExpired      = errors.New("task expired")
	ErrNotYetValid  = errors.New("task not yet valid")
	ErrReplay       = errors.New("task already seen")
	ErrLifetime     = errors.New("task lifetime too long")
	ErrWrongType    = errors.New("payload type does not match envelope")
)

// The envelope's binary layout:
//
//	magic   4 bytes  "HMe1"
//	type    1 byte   one of the type codes below
//	key    32 bytes  signer's ed25519 public key
//	sig    64 bytes  ed25519 signature over domain || type || payload
//	payload          the encoded message (JSON)
//
// The signature covers the bytes, not a decoded struct, so nothing from a
// message is interpreted before its signature has been checked.
const (
	envelopeMagic  = "HMe1"
	envelopeHeader = 4 + 1 + ed25519.PublicKeySize + ed25519.SignatureSize
	signDomain     = "huntmesh envelope v1\x00"
)

// typeCodes maps message types to their one-byte wire code.
var typeCodes = map[string]byte{
	TypeHunt:   1,
	TypeQuery:  2,
	TypeIntel:  3,
	TypeCancel: 4,
	TypeResult: 16,
}

// TypeResult marks an envelope holding a Result, signed by a node key.
const TypeResult = "result"

// Envelope is a signed message whose signature has been verified.
type Envelope struct {
	// Type is the message type named by the envelope.
	Type string

	// Signer is the public key that signed the payload.
	Signer ed25519.PublicKey

	// Payload is the signed bytes.
	Payload []byte
}

// SignerID is the short ID of the signing key, as shown in logs and trust
// listings.
func (e *Envelope) SignerID() string { return KeyID(e.Signer) }

// KeyID names a public key by the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Seal signs payload as a message of type typ with priv and returns the
// envelope bytes.
func Seal(priv ed25519.PrivateKey, typ string, payload []byte) ([]byte, error) {
	code, ok := typeCodes[typ]
	if !ok {
		return nil, fmt.Errorf("seal: unknown message type %q", typ)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	sig := ed25519.Sign(priv, signedBytes(code, payload))

	out := make([]byte, 0, envelopeHeader+len(payload))
	out = append(out, envelopeMagic...)
	out = append(out, code)
	out = append(out, priv.Public().(ed25519.PublicKey)...)
	out = append(out, sig...)
	out = append(out, payload...)
	return out, nil
}

// Open checks the envelope's framing, size and signature, and returns it.
// It does not decode the payload and says nothing about whether the signer
// is trusted: see Policy.Check for that.
func Open(raw []byte, maxSize int) (*Envelope, error) {
	if maxSize > 0 && len(raw) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), maxSize)
	}
	if len(raw) < envelopeHeader || string(raw[:4]) != envelopeMagic {
		return nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	code := raw[4]
	typ := ""
	for name, c := range typeCodes {
		if c == code {
			typ = name
		}
	}
	if typ == "" {
		return nil, fmt.Errorf("%w: unknown type code %d", ErrMalformed, code)
	}
	pub := ed25519.PublicKey(raw[5 : 5+ed25519.PublicKeySize])
	sig := raw[5+ed25519.PublicKeySize : envelopeHeader]
	payload := raw[envelopeHeader:]
	if !ed25519.Verify(pub, signedBytes(code, payload), sig) {
		return nil, ErrBadSignature
	}
	return &Envelope{
		Type:    typ,
		Signer:  append(ed25519.PublicKey(nil), pub...),
		Payload: payload,
	}, nil
}

func signedBytes(code byte, payload []byte) []byte {
	b := make([]byte, 0, len(signDomain)+1+len(payload))
	b = append(b, signDomain...)
	b = append(b, code)
	return append(b, payload...)
}
