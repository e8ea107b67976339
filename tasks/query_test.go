package tasks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeQuery(t *testing.T) {
	now := time.Date(2026, 5, 3, 8, 0, 0, 0, time.UTC)
	good := Query{Header: Header{ID: NewID(now), Type: TypeQuery, IssuedAt: now,
		NotAfter: now.Add(time.Minute)}, Expr: `kind == "connection"`,
		GroupBy: []string{"remote_address"}}
	raw, _ := json.Marshal(good)
	if q, err := DecodeQuery(raw); err != nil || q.Expr != good.Expr {
		t.Fatalf("good query: %+v, %v", q, err)
	}

	for name, tc := range map[string]struct {
		edit func(q *Query)
		want string
	}{
		"empty":         {func(q *Query) { q.Expr = "" }, "expression is empty"},
		"long":          {func(q *Query) { q.Expr = strings.Repeat("a", MaxQueryExpr+1) }, "bytes, at most"},
		"many group-by": {func(q *Query) { q.GroupBy = make([]string, MaxGroupBy+1) }, "group-by fields"},
		"negative":      {func(q *Query) { q.Limit = -1 }, "negative limit"},
		"range":         {func(q *Query) { q.Since, q.Until = now, now }, "until is not after since"},
		"type":          {func(q *Query) { q.Type = TypeHunt }, "not a query"},
	} {
		t.Run(name, func(t *testing.T) {
			q := good
			tc.edit(&q)
			raw, _ := json.Marshal(q)
			_, err := DecodeQuery(raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeQuery([]byte(`{"type":"query","expr":"true","extra":1}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown field: %v, want ErrMalformed", err)
	}
	if _, err := DecodeCancel([]byte(`{"type":"cancel","target":""}`)); err == nil {
		t.Error("a cancel without a target was accepted")
	}
}

// FuzzDecodeQuery feeds hostile payloads to the query and cancel decoders:
// they must refuse or accept without panicking, and what they accept must
// be within the bounds.
func FuzzDecodeQuery(f *testing.F) {
	f.Add([]byte(`{"id":"01J","type":"query","expr":"kind == \"process\"","group_by":["exe"]}`))
	f.Add([]byte(`{"id":"01J","type":"cancel","target":"01JTARGET"}`))
	f.Add([]byte(`{"type":"query","expr":"true","limit":-5}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		if q, err := DecodeQuery(payload); err == nil {
			if q.Expr == "" || len(q.Expr) > MaxQueryExpr || len(q.GroupBy) > MaxGroupBy ||
				q.Limit < 0 {
				t.Fatalf("accepted out of bounds: %+v", q)
			}
		}
		if c, err := DecodeCancel(payload); err == nil && (c.Target == "" || len(c.Target) > 64) {
			t.Fatalf("accepted cancel %+v", c)
		}
	})
}
