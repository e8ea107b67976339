package tasks

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func testHunt(now time.Time) *Hunt {
	return &Hunt{
		Header: Header{
			ID:       NewID(now),
			Type:     TypeHunt,
			IssuedAt: now,
			NotAfter: now.Add(10 * time.Minute),
			ReplyTo:  "12D3KooWtest",
		},
		Collectors: []CollectorSpec{{Name: "processes"}},
		IoCs:       []IoC{{Type: IoCPort, Value: "3333"}},
	}
}

func mustKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestPolicyCheck(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	analystPub, analystKey := mustKey(t)
	queryPub, queryKey := mustKey(t)
	_, strangerKey := mustKey(t)
	trust := &Trust{}
	trust.Add(analystPub, "alice", RoleHunt)
	trust.Add(queryPub, "quinn", RoleQuery)
	policy := DefaultPolicy()

	seal := func(key ed25519.PrivateKey, h *Hunt) []byte {
		raw, err := SealTask(key, TypeHunt, h, policy.MaxSize)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	tests := []struct {
		name string
		raw  func() []byte
		want error
	}{
		{"valid", func() []byte { return seal(analystKey, testHunt(now)) }, nil},
		{"forged payload", func() []byte {
			raw := seal(analystKey, testHunt(now))
			return bytes.Replace(raw, []byte("3333"), []byte("4444"), 1)
		}, ErrBadSignature},
		{"untrusted key", func() []byte { return seal(strangerKey, testHunt(now)) }, ErrUntrusted},
		{"key without hunt role", func() []byte { return seal(queryKey, testHunt(now)) }, ErrRole},
		{"expired", func() []byte {
			h := testHunt(now.Add(-time.Hour))
			return seal(analystKey, h)
		}, ErrExpired},
		{"issued in the future", func() []byte {
			return seal(analystKey, testHunt(now.Add(10*time.Minute)))
		}, ErrNotYetValid},
		{"lifetime too long", func() []byte {
			h := testHunt(now)
			h.NotAfter = now.Add(30 * 24 * time.Hour)
			return seal(analystKey, h)
		}, ErrLifetime},
		{"payload type differs from envelope", func() []byte {
			h := testHunt(now)
			h.Type = TypeQuery
			raw, err := SealTask(analystKey, TypeHunt, h, 0)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}, ErrWrongType},
		{"truncated", func() []byte { return seal(analystKey, testHunt(now))[:50] }, ErrMalformed},
		{"not json", func() []byte {
			raw, _ := Seal(analystKey, TypeHunt, []byte("{not json"))
			return raw
		}, ErrMalformed},
		{"too large", func() []byte {
			raw, _ := Seal(analystKey, TypeHunt, bytes.Repeat([]byte("a"), 70<<10))
			return raw
		}, ErrTooLarge},
		{"bad selector", func() []byte {
			h := testHunt(now)
			h.Selector.Expr = "role=web and ("
			return seal(analystKey, h)
		}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.Check(tc.raw(), trust, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				h, err := DecodeHunt(got.Envelope.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if got.Signer.Name != "alice" || h.IoCs[0].Value != "3333" {
					t.Fatalf("decoded %+v signed by %q", h, got.Signer.Name)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSealTaskRefusesOversize(t *testing.T) {
	_, key := mustKey(t)
	h := testHunt(time.Now())
	h.IoCs = []IoC{{Type: IoCYARA, Value: strings.Repeat("x", 65<<10)}}
	if _, err := SealTask(key, TypeHunt, h, 64<<10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SealTask = %v, want ErrTooLarge", err)
	}
}

func TestResultRoundTrip(t *testing.T) {
	_, key := mustKey(t)
	r := &Result{TaskID: "T1", Node: "n1", Host: "h", Status: StatusFinished, Final: true}
	raw, err := SealResult(key, r)
	if err != nil {
		t.Fatal(err)
	}
	env, got, err := OpenResult(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.TaskID != "T1" || !env.Signer.Equal(key.Public()) {
		t.Fatalf("got %+v", got)
	}
	raw[len(raw)-2] ^= 1
	if _, _, err := OpenResult(raw, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered result: %v", err)
	}
}

func TestParseTrust(t *testing.T) {
	pub, _ := mustKey(t)
	line := FormatPublicKey(pub, "alice@soc")
	good := "# analysts\n\nhunt,query " + line + "\n"
	trust, err := ParseTrust(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := trust.Lookup(pub)
	if !ok || e.Name != "alice@soc" || !e.Allows(TypeQuery) || e.Allows(TypeIntel) {
		t.Fatalf("entry %+v ok=%v", e, ok)
	}

	bad := map[string]string{
		"unknown role": "hunt,root " + line,
		"no key":       "hunt",
		"bad base64":   "hunt huntmesh-ed25519 !!!",
	}
	for name, text := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTrust(strings.NewReader("\n" + text))
			if err == nil || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("ParseTrust = %v, want an error naming line 2", err)
			}
		})
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	_, key := mustKey(t)
	pemBytes, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(pemBytes)
	if err != nil || !got.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ParsePrivateKey([]byte("junk")); err == nil {
		t.Fatal("junk parsed as a key")
	}
}

func FuzzOpen(f *testing.F) {
	_, key := mustKey(&testing.T{})
	raw, _ := SealTask(key, TypeHunt, testHunt(time.Now()), 0)
	f.Add(raw)
	f.Add([]byte("HMe1"))
	trust := &Trust{}
	trust.Add(key.Public().(ed25519.PublicKey), "fuzz", RoleAdmin)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DefaultPolicy().Check(data, trust, time.Now())
		if err == nil {
			_, _ = DecodeHunt(c.Envelope.Payload)
		}
		_, _, _ = OpenResult(data, 1<<20)
	})
}
