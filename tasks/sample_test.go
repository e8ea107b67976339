package tasks

import (
	"fmt"
	"testing"
)

func fleet(n int) []NodeInfo {
	out := make([]NodeInfo, n)
	for i := range out {
		role := "app"
		if i%2 == 0 {
			role = "web"
		}
		out[i] = NodeInfo{ID: fmt.Sprintf("node-%02d", i), Host: fmt.Sprintf("h%d", i),
			Labels: map[string]string{"role": role}}
	}
	out[3].Labels["value"] = "high"
	return out
}

// TestSampleCountMet checks that a count sample decided on each node from
// its membership view selects exactly that many nodes, for many tasks.
func TestSampleCountMet(t *testing.T) {
	nodes := fleet(20)
	tests := []struct {
		name    string
		sel     Selector
		want    int
		withoff bool
	}{
		{"5 of 20", Selector{Sample: "5", FleetSize: 20}, 5, false},
		{"0 of 20", Selector{Sample: "0", FleetSize: 20}, 0, false},
		{"20 of 20", Selector{Sample: "20", FleetSize: 20}, 20, false},
		{"3 web of 10", Selector{Expr: "role=web", Sample: "3", FleetSize: 20}, 3, false},
		{"4 plus high value", Selector{Sample: "4", FleetSize: 20, AlwaysHighValue: true}, 5,
			false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for task := range 50 {
				id := fmt.Sprintf("task-%d", task)
				got := 0
				for _, n := range nodes {
					ok, err := tc.sel.MatchesView(id, n, nodes)
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						got++
					}
				}
				if got != tc.want {
					t.Fatalf("task %s: %d nodes selected, want %d", id, got, tc.want)
				}
			}
		})
	}
}

func TestSampleCountRefused(t *testing.T) {
	nodes := fleet(4)
	s := Selector{Sample: "9", FleetSize: 4}
	if _, err := s.MatchesView("t", nodes[0], nodes); err == nil {
		t.Fatal("a count above the fleet was accepted")
	}
	// Without a view a count falls back to a share of FleetSize.
	s = Selector{Sample: "2", FleetSize: 4}
	if _, err := s.MatchesView("t", nodes[0], nil); err != nil {
		t.Fatal(err)
	}
}
