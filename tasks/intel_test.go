package tasks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func intelHeader() Header {
	now := time.Now().UTC()
	return Header{ID: NewID(now), IssuedAt: now, NotAfter: now.Add(IntelLifetime)}
}

func TestSealIntel(t *testing.T) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	trust := &Trust{}
	trust.Add(pub, "intel-analyst", RoleIntel)
	pol := DefaultPolicy()
	pol.MaxLifetime = 0

	ops := make([]IntelOp, 3000)
	for i := range ops {
		ops[i] = IntelOp{Op: IntelAdd, Origin: KeyID(pub), Clock: IntelClock{Wall: int64(i + 1)},
			IoC: IoC{Type: IoCSHA256, Value: fmt.Sprintf("%064x", i), Source: "feed"}}
	}
	t.Run("splits under the size limit and keeps every op in order", func(t *testing.T) {
		envs, err := SealIntel(priv, ops, pol.MaxSize, intelHeader)
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) < 2 {
			t.Fatalf("%d envelopes, want several", len(envs))
		}
		next := 0
		for _, raw := range envs {
			if len(raw) > pol.MaxSize {
				t.Fatalf("envelope of %d bytes, over %d", len(raw), pol.MaxSize)
			}
			c, err := pol.Check(raw, trust, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			u, err := DecodeIntel(c.Envelope.Payload)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range u.Ops {
				if op.IoC.Value != ops[next].IoC.Value {
					t.Fatalf("op %d is %s, want %s", next, op.IoC.Value, ops[next].IoC.Value)
				}
				next++
			}
		}
		if next != len(ops) {
			t.Fatalf("%d ops decoded, want %d", next, len(ops))
		}
	})
	t.Run("refuses an op larger than one update", func(t *testing.T) {
		big := []IntelOp{{Op: IntelAdd, IoC: IoC{Type: IoCYARA, Value: strings.Repeat("x", 70<<10)}}}
		if _, err := SealIntel(priv, big, pol.MaxSize, intelHeader); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err %v, want ErrTooLarge", err)
		}
	})
	t.Run("intel lifetime needs the intel policy", func(t *testing.T) {
		envs, err := SealIntel(priv, ops[:1], pol.MaxSize, intelHeader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DefaultPolicy().Check(envs[0], trust, time.Now()); !errors.Is(err, ErrLifetime) {
			t.Fatalf("the task policy accepted an intel update: %v", err)
		}
	})
}

func TestDecodeIntelRefuses(t *testing.T) {
	for name, payload := range map[string]string{
		"not json":      "{",
		"a hunt":        `{"type":"hunt","ops":[{"op":"add"}]}`,
		"no ops":        `{"type":"intel","ops":[]}`,
		"unknown op":    `{"type":"intel","ops":[{"op":"replace"}]}`,
		"unknown field": `{"type":"intel","ops":[{"op":"add"}],"extra":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeIntel([]byte(payload)); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}

func FuzzDecodeIntel(f *testing.F) {
	f.Add([]byte(`{"type":"intel","ops":[{"op":"add","ioc":{"type":"ip","value":"1.2.3.4"}}]}`))
	f.Add([]byte(`{"type":"intel","ops":[{"op":"remove","clock":{"wall":-1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeIntel(b)
		if err == nil && (len(u.Ops) == 0 || len(u.Ops) > MaxIntelOps) {
			t.Fatalf("accepted %d ops", len(u.Ops))
		}
	})
}
