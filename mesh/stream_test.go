package mesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const echoProto = "/test/echo/1"

// echo answers "<caller>:<request>", fails on "fail", and returns an
// oversize body on "huge".
func echo(max int) func(context.Context, string, []byte) ([]byte, error) {
	return func(ctx context.Context, from string, req []byte) ([]byte, error) {
		switch string(req) {
		case "fail":
			return nil, errors.New("asked to fail")
		case "huge":
			return make([]byte, max+1), nil
		case "block":
			<-ctx.Done()
			return nil, ctx.Err()
		case "panic":
			panic("handler bug")
		}
		return []byte(from + ":" + string(req)), nil
	}
}

func TestCall(t *testing.T) {
	small := DefaultConfig().MaxStreamSize
	a := newTestMesh(t, func(c *Config) { c.MaxStreamSize = 2 * small })
	b := newTestMesh(t, nil)
	connect(t, a, b)
	a.Handle(echoProto, echo(2*small))
	b.Handle(echoProto, echo(small))
	ctx := context.Background()

	roundTrips := []struct {
		name     string
		from, to *Mesh
	}{
		{"a to b", a, b},
		{"b to a", b, a},
		{"a to self", a, a},
	}
	for _, tc := range roundTrips {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.from.Call(ctx, tc.to.ID(), echoProto, []byte("ping"))
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.from.ID() + ":ping"; string(resp) != want {
				t.Fatalf("response %q, want %q", resp, want)
			}
		})
	}

	failures := []struct {
		name  string
		from  *Mesh
		to    *Mesh
		proto string
		req   []byte
		check func(error) bool
	}{
		{"oversize request refused before sending", b, a, echoProto,
			make([]byte, small+1), func(err error) bool { return errors.Is(err, ErrTooLarge) }},
		{"request over the server's cap", a, b, echoProto, make([]byte, small+1),
			func(err error) bool { return err != nil }},
		{"handler error comes back", a, b, echoProto, []byte("fail"), isRemote("asked to fail")},
		{"handler error on self", a, a, echoProto, []byte("fail"), isRemote("asked to fail")},
		{"oversize response refused", a, b, echoProto, []byte("huge"), isRemote("too large")},
		{"handler panic contained", a, b, echoProto, []byte("panic"), isRemote("panic")},
		{"unknown protocol", a, b, "/test/none/1", nil,
			func(err error) bool { return errors.Is(err, ErrNoHandler) }},
		{"unknown protocol on self", a, a, "/test/none/1", nil,
			func(err error) bool { return errors.Is(err, ErrNoHandler) }},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.from.Call(ctx, tc.to.ID(), tc.proto, tc.req)
			if !tc.check(err) {
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}

	t.Run("deadline ends a silent call", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := a.Call(ctx, b.ID(), echoProto, []byte("block"))
		if err == nil {
			t.Fatal("blocked call succeeded")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("call returned after %s, want about 300ms", d)
		}
	})
	t.Run("still usable after failures", func(t *testing.T) {
		if _, err := a.Call(ctx, b.ID(), echoProto, []byte("again")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("counters", func(t *testing.T) {
		if n := b.Counters()["call/in/"+echoProto]; n < 3 {
			t.Fatalf("call/in counter = %d, want at least 3", n)
		}
	})
}

// isRemote matches a *RemoteError whose text contains want.
func isRemote(want string) func(error) bool {
	return func(err error) bool {
		var re *RemoteError
		return errors.As(err, &re) && strings.Contains(re.Msg, want)
	}
}

func TestFrames(t *testing.T) {
	cases := []struct {
		name  string
		body  []byte
		limit int
		ok    bool
	}{
		{"empty", nil, 10, true},
		{"at limit", []byte("0123456789"), 10, true},
		{"over limit", []byte("0123456789x"), 10, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeFrame(&buf, tc.body); err != nil {
				t.Fatal(err)
			}
			got, err := readFrame(bufio.NewReader(&buf), tc.limit)
			if tc.ok != (err == nil) {
				t.Fatalf("readFrame err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(got, tc.body) {
				t.Fatalf("round trip %q, want %q", got, tc.body)
			}
			if !tc.ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
		})
	}
	t.Run("huge length refused before allocation", func(t *testing.T) {
		hdr := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
		_, err := readFrame(bufio.NewReader(bytes.NewReader(hdr)), 1<<20)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{5, 'a'})), 10); err == nil {
			t.Fatal("truncated frame accepted")
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		body, err := readFrame(bufio.NewReader(bytes.NewReader(raw)), 1024)
		if err == nil && len(body) > 1024 {
			t.Fatalf("frame of %d bytes passed a 1024-byte cap", len(body))
		}
	})
}
