package intel

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// fakeWall is an injectable wall clock.
type fakeWall struct{ t time.Time }

func (f *fakeWall) now() time.Time { return f.t }

func TestClock(t *testing.T) {
	w := &fakeWall{t: testNow}
	c := NewClock(w.now)
	a := c.Now()
	b := c.Now()
	if b.Compare(a) <= 0 || b.Wall != a.Wall || b.Logical != 1 {
		t.Fatalf("same tick: %v then %v", a, b)
	}

	t.Run("wall going back does not go back", func(t *testing.T) {
		w.t = testNow.Add(-time.Hour)
		if n := c.Now(); n.Compare(b) <= 0 {
			t.Fatalf("%v not after %v", n, b)
		}
	})
	t.Run("observe orders later stamps after remote", func(t *testing.T) {
		w.t = testNow
		remote := HLC{Wall: testNow.Add(30 * time.Second).UnixNano(), Logical: 7}
		if err := c.Observe(remote); err != nil {
			t.Fatal(err)
		}
		if n := c.Now(); n.Compare(remote) <= 0 {
			t.Fatalf("%v not after %v", n, remote)
		}
	})
	t.Run("far future refused", func(t *testing.T) {
		remote := HLC{Wall: testNow.Add(time.Hour).UnixNano()}
		if err := c.Observe(remote); !errors.Is(err, ErrClockDrift) {
			t.Fatalf("got %v", err)
		}
		if n := c.Now(); n.Compare(remote) >= 0 {
			t.Fatal("refused stamp was folded in")
		}
	})
}

func upd(op Op, typ, value string, wall int64, origin string) Update {
	return Update{Op: op, IoC: tasks.IoC{Type: typ, Value: value, Severity: "high"},
		Clock: HLC{Wall: wall}, Origin: origin}
}

func activeValues(s *Set) []string {
	var out []string
	for _, c := range s.Active(testNow) {
		out = append(out, c.Type+" "+c.Value)
	}
	return out
}

func TestSetLWW(t *testing.T) {
	tests := []struct {
		name string
		ups  []Update
		want []string
	}{
		{"add", []Update{upd(OpAdd, "ip", "192.0.2.1", 1, "a")}, []string{"ip 192.0.2.1"}},
		{"later remove wins", []Update{upd(OpAdd, "ip", "192.0.2.1", 1, "a"),
			upd(OpRemove, "ip", "192.0.2.1", 2, "b")}, nil},
		{"older remove loses", []Update{upd(OpRemove, "ip", "192.0.2.1", 1, "b"),
			upd(OpAdd, "ip", "192.0.2.1", 2, "a")}, []string{"ip 192.0.2.1"}},
		{"late old add cannot resurrect", []Update{upd(OpRemove, "ip", "192.0.2.1", 5, "b"),
			upd(OpAdd, "ip", "192.0.2.1", 2, "a")}, nil},
		{"identity is normalised", []Update{upd(OpAdd, "sha1",
			"70B21E3AC69F0220784228375BA6BEF37FE0C488", 1, "a"),
			upd(OpRemove, "sha1", "70b21e3ac69f0220784228375ba6bef37fe0c488", 2, "a")}, nil},
		{"clock tie: higher origin wins", []Update{upd(OpRemove, "ip", "192.0.2.1", 3, "a"),
			upd(OpAdd, "ip", "192.0.2.1", 3, "b")}, []string{"ip 192.0.2.1"}},
		{"full tie: remove wins", []Update{upd(OpAdd, "ip", "192.0.2.1", 3, "a"),
			upd(OpRemove, "ip", "192.0.2.1", 3, "a")}, nil},
		{"expired add is inactive", []Update{{Op: OpAdd, IoC: tasks.IoC{Type: "ip",
			Value: "192.0.2.1", Expires: testNow}, Clock: HLC{Wall: 1}, Origin: "a"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet()
			for _, u := range tc.ups {
				if _, err := s.Apply(u); err != nil {
					t.Fatal(err)
				}
			}
			if got := activeValues(s); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSetApplyReportsChange(t *testing.T) {
	s := NewSet()
	u := upd(OpAdd, "domain", "pool.minexmr.example", 10, "a")
	if ch, err := s.Apply(u); !ch || err != nil {
		t.Fatalf("first apply: %v %v", ch, err)
	}
	v := s.Version()
	if ch, _ := s.Apply(u); ch || s.Version() != v {
		t.Fatal("repeat changed the set")
	}
	u.IoC.Severity = "critical"
	u.Clock.Wall++
	if ch, _ := s.Apply(u); !ch {
		t.Fatal("edit did not change the set")
	}
	if d := s.Updates(v); len(d) != 1 || d[0].IoC.Severity != "critical" {
		t.Fatalf("delta since %d: %+v", v, d)
	}
}

func TestSetRefuses(t *testing.T) {
	tests := []struct {
		name string
		u    Update
		want error
	}{
		{"bad op", Update{Op: "toggle", IoC: ioc("ip", "192.0.2.1"), Clock: HLC{Wall: 1},
			Origin: "a"}, ErrBadUpdate},
		{"no origin", upd(OpAdd, "ip", "192.0.2.1", 1, ""), ErrBadUpdate},
		{"zero clock", upd(OpAdd, "ip", "192.0.2.1", 0, "a"), ErrBadUpdate},
		{"bad value", upd(OpAdd, "ip", "not-an-ip", 1, "a"), ErrInvalidIoC},
		{"long value", upd(OpAdd, "cmdline", strings.Repeat("x", 5000), 1, "a"), ErrInvalidIoC},
		{"too many tags", Update{Op: OpAdd, IoC: tasks.IoC{Type: "ip", Value: "192.0.2.1",
			Tags: make([]string, 100)}, Clock: HLC{Wall: 1}, Origin: "a"}, ErrBadUpdate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSet().Apply(tc.u); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("full", func(t *testing.T) {
		s := NewSetLimits(SetLimits{MaxIoCs: 2})
		for i := range 2 {
			if _, err := s.Apply(upd(OpAdd, "port", fmt.Sprint(i+1), 1, "a")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Apply(upd(OpAdd, "port", "3", 1, "a")); !errors.Is(err, ErrSetFull) {
			t.Fatalf("got %v", err)
		}
		if ch, err := s.Apply(upd(OpRemove, "port", "1", 2, "a")); !ch || err != nil {
			t.Fatalf("update of a held identity refused: %v", err)
		}
	})
}

// randomUpdates makes adds and removes of a few identities from several
// origins, each with its own HLC over a shared, jittery wall clock.
func randomUpdates(r *rand.Rand, n int) []Update {
	origins := []string{"node-a", "node-b", "node-c"}
	clocks := make([]*Clock, len(origins))
	walls := make([]*fakeWall, len(origins))
	for i := range clocks {
		walls[i] = &fakeWall{t: testNow}
		clocks[i] = NewClock(walls[i].now)
	}
	var out []Update
	for range n {
		o := r.IntN(len(origins))
		// Coarse ticks make equal wall times, and so counter and origin
		// tiebreaks, common.
		walls[o].t = walls[o].t.Add(time.Duration(r.IntN(3)) * time.Microsecond)
		op := OpAdd
		if r.IntN(3) == 0 {
			op = OpRemove
		}
		u := Update{Op: op, Clock: clocks[o].Now(), Origin: origins[o], IoC: tasks.IoC{
			Type: tasks.IoCIP, Value: fmt.Sprintf("192.0.2.%d", r.IntN(8)),
			Severity: []string{"low", "high"}[r.IntN(2)], Tags: []string{origins[o]},
		}}
		if r.IntN(2) == 0 {
			u.IoC.Type, u.IoC.Value = tasks.IoCDomain, fmt.Sprintf("D%d.example", r.IntN(5))
		}
		out = append(out, u)
		if r.IntN(10) == 0 {
			// A twin with the same stamp and origin but other content (a
			// faulty tool): the encoded bytes must break the tie alike
			// everywhere.
			twin := u
			twin.IoC.Severity, twin.IoC.Tags = "critical", []string{"twin"}
			if r.IntN(2) == 0 {
				twin.Op = OpRemove
			}
			out = append(out, twin)
		}
		// Sometimes a node hears another's update and moves its clock.
		if p := r.IntN(len(origins)); p != o {
			_ = clocks[p].Observe(u.Clock)
		}
	}
	return out
}

func TestSetConverges(t *testing.T) {
	// Guard against a vacuous pass: some states must be active and some
	// identities removed.
	active, held := 0, 0
	defer func() {
		if active == 0 || active == held {
			t.Errorf("degenerate runs: %d active of %d held", active, held)
		}
	}()
	for seed := range uint64(50) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			ups := randomUpdates(r, 60)

			// Three replicas get the updates in different orders, with
			// duplicates, by different routes.
			replicas := []*Set{NewSet(), NewSet(), NewSet()}
			for i, s := range replicas {
				order := slices.Clone(ups)
				order = append(order, ups[:r.IntN(len(ups))]...)
				r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
				if i == 2 {
					// Replica 2 learns half directly and half by merging
					// deltas from a go-between.
					mid := NewSet()
					if _, err := mid.ApplyAll(order[len(order)/2:]); err != nil {
						t.Fatal(err)
					}
					if _, err := s.ApplyAll(order[:len(order)/2]); err != nil {
						t.Fatal(err)
					}
					if _, err := s.ApplyAll(mid.Updates(0)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if _, err := s.ApplyAll(order); err != nil {
					t.Fatal(err)
				}
			}
			// Merges in any direction and repeats change nothing more.
			if n, _ := replicas[0].Merge(replicas[1]); n != 0 {
				t.Errorf("merge of equal states changed %d", n)
			}
			want := activeValues(replicas[0])
			active += len(want)
			held += replicas[0].Len()
			for i, s := range replicas {
				if got := activeValues(s); !slices.Equal(got, want) {
					t.Fatalf("replica %d active %q, want %q", i, got, want)
				}
				if s.Digest() != replicas[0].Digest() {
					t.Fatalf("replica %d digest differs", i)
				}
			}

			// Persistence keeps the digest.
			b, _ := replicas[2].MarshalBinary()
			back := NewSet()
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if back.Digest() != replicas[0].Digest() {
				t.Fatal("digest changed over a marshal round trip")
			}
		})
	}
}

func TestSetDigestDiffers(t *testing.T) {
	a, b := NewSet(), NewSet()
	_, _ = a.Apply(upd(OpAdd, "ip", "192.0.2.1", 1, "x"))
	_, _ = b.Apply(upd(OpRemove, "ip", "192.0.2.1", 1, "x"))
	if a.Digest() == b.Digest() || a.Digest() == NewSet().Digest() {
		t.Fatal("different states share a digest")
	}
	// The cached digest follows changes.
	before := a.Digest()
	_, _ = a.Apply(upd(OpRemove, "ip", "192.0.2.1", 2, "x"))
	if a.Digest() == before || a.Digest() != func() [32]byte {
		c := NewSet()
		_, _ = c.Apply(upd(OpRemove, "ip", "192.0.2.1", 2, "x"))
		return c.Digest()
	}() {
		t.Fatal("digest not recomputed after a change")
	}
}

func TestSetUnmarshalRefuses(t *testing.T) {
	s := NewSet()
	_, _ = s.Apply(upd(OpAdd, "ip", "192.0.2.1", 1, "x"))
	good, _ := s.MarshalBinary()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", []byte("nope")},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(slices.Clone(good), 0)},
		{"huge count", append([]byte(setMagic), 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"huge string", append([]byte(setMagic), 1, 1, 2, 0, 0xff, 0xff, 0xff, 0x7f)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := NewSet()
			_, _ = dst.Apply(upd(OpAdd, "port", "22", 1, "y"))
			before := dst.Digest()
			if err := dst.UnmarshalBinary(tc.data); err == nil {
				t.Fatal("accepted")
			}
			if dst.Digest() != before {
				t.Fatal("set changed by a refused load")
			}
		})
	}
}

func FuzzSetUnmarshal(f *testing.F) {
	s := NewSet()
	_, _ = s.Apply(upd(OpAdd, "ip", "192.0.2.1", 1, "x"))
	_, _ = s.Apply(upd(OpRemove, "domain", "a.example", 2, "y"))
	good, _ := s.MarshalBinary()
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewSetLimits(SetLimits{MaxIoCs: 1000})
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		// Whatever loads must round-trip to the same state.
		b, _ := s.MarshalBinary()
		back := NewSet()
		if err := back.UnmarshalBinary(b); err != nil || back.Digest() != s.Digest() {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestSetHeld(t *testing.T) {
	s := NewSet()
	apply := func(u Update) {
		t.Helper()
		if _, err := s.Apply(u); err != nil {
			t.Fatal(err)
		}
	}
	apply(upd(OpAdd, tasks.IoCCmdlineRE, "a+b", 1, "x"))
	apply(upd(OpAdd, tasks.IoCCmdlineRE, "c+d", 1, "x"))
	apply(upd(OpAdd, tasks.IoCCmdlineRE, "c+d", 2, "x")) // an edit: still one
	apply(upd(OpRemove, tasks.IoCCmdlineRE, "a+b", 3, "x"))
	apply(upd(OpAdd, tasks.IoCCmdlineRE, "a+b", 2, "x")) // older than the remove
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.1", 1, "x"))
	if n, b := s.Held(tasks.IoCCmdlineRE); n != 1 || b != 3 {
		t.Fatalf("held %d expressions of %d bytes, want 1 of 3", n, b)
	}
	if !s.Holds(tasks.IoC{Type: tasks.IoCCmdlineRE, Value: "c+d"}) ||
		s.Holds(tasks.IoC{Type: tasks.IoCCmdlineRE, Value: "a+b"}) ||
		!s.Holds(tasks.IoC{Type: tasks.IoCIP, Value: "::ffff:192.0.2.1"}) {
		t.Fatal("Holds disagrees with the states applied")
	}
	data, _ := s.MarshalBinary()
	back := NewSet()
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if n, _ := back.Held(tasks.IoCCmdlineRE); n != 1 {
		t.Fatalf("held %d after a round trip, want 1", n)
	}
}

func TestSetAdded(t *testing.T) {
	s := NewSet()
	values := func(iocs []tasks.IoC) []string {
		var out []string
		for _, c := range iocs {
			out = append(out, c.Value)
		}
		slices.Sort(out)
		return out
	}
	apply := func(u Update) {
		t.Helper()
		if _, err := s.Apply(u); err != nil {
			t.Fatal(err)
		}
	}
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.1", 1, "x"))
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.2", 1, "x"))
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.3", 1, "x"))
	v := s.Version()

	edit := upd(OpAdd, tasks.IoCIP, "192.0.2.1", 2, "x")
	edit.IoC.Tags = []string{"resent"}
	apply(edit)                                            // an edit: not newly added
	apply(upd(OpRemove, tasks.IoCIP, "192.0.2.2", 2, "x")) // removed
	apply(upd(OpRemove, tasks.IoCIP, "192.0.2.3", 2, "x"))
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.3", 3, "x")) // added again
	apply(upd(OpAdd, tasks.IoCIP, "192.0.2.4", 3, "x")) // new
	expired := upd(OpAdd, tasks.IoCIP, "192.0.2.5", 3, "x")
	expired.IoC.Expires = testNow.Add(-time.Hour)
	apply(expired)

	if got := values(s.Added(v, testNow)); !slices.Equal(got, []string{"192.0.2.3", "192.0.2.4"}) {
		t.Fatalf("added since %d: %q", v, got)
	}
	if got := values(s.Added(0, testNow)); !slices.Equal(got,
		[]string{"192.0.2.1", "192.0.2.3", "192.0.2.4"}) {
		t.Fatalf("added since 0: %q", got)
	}
	if got := s.Added(s.Version(), testNow); len(got) != 0 {
		t.Fatalf("added since now: %v", got)
	}
}
