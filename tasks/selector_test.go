package tasks

import (
	"fmt"
	"testing"
)

func TestSelectorMatches(t *testing.T) {
	web := NodeInfo{ID: "n1", Host: "web-01", Labels: map[string]string{"role": "web", "site": "dc1"}}
	app := NodeInfo{ID: "n2", Host: "app-01", Labels: map[string]string{"role": "app", "site": "lab"}}
	tests := []struct {
		expr     string
		web, app bool
	}{
		{"", true, true},
		{"all", true, true},
		{"role=web", true, false},
		{"role=web,site=dc1", true, false},
		{"role=web or role=app", true, true},
		{"(role=web or role=app) and not site=lab", true, false},
		{"site!=lab", true, false},
		{"host=APP-01", false, true},
		{"node=n1", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s := Selector{Expr: tc.expr}
			gotWeb, err := s.Matches("T", web)
			if err != nil {
				t.Fatal(err)
			}
			gotApp, _ := s.Matches("T", app)
			if gotWeb != tc.web || gotApp != tc.app {
				t.Fatalf("web=%v app=%v, want %v %v", gotWeb, gotApp, tc.web, tc.app)
			}
		})
	}
}

func TestSelectorRejects(t *testing.T) {
	for _, expr := range []string{"role", "(role=web", "role=web and", "=x", "role=web)"} {
		if err := (Selector{Expr: expr}).Validate(); err == nil {
			t.Errorf("Validate(%q) accepted a bad expression", expr)
		}
	}
	if err := (Selector{Sample: "7", FleetSize: 5}).Validate(); err == nil {
		t.Error("a sample larger than the fleet was accepted")
	}
	if err := (Selector{Sample: "150%"}).Validate(); err == nil {
		t.Error("a sample over 100% was accepted")
	}
}

func TestSelectorSampleIsDeterministicAndNearShare(t *testing.T) {
	s := Selector{Sample: "10%"}
	picked := 0
	for i := range 10000 {
		n := NodeInfo{ID: fmt.Sprintf("node-%d", i)}
		a, _ := s.Matches("task-1", n)
		b, _ := s.Matches("task-1", n)
		if a != b {
			t.Fatal("sampling is not deterministic")
		}
		if a {
			picked++
		}
	}
	if picked < 850 || picked > 1150 {
		t.Fatalf("10%% sample picked %d of 10000", picked)
	}
	high := NodeInfo{ID: "x", Labels: map[string]string{"value": "high"}}
	s = Selector{Sample: "0%", AlwaysHighValue: true}
	if ok, _ := s.Matches("task-1", high); !ok {
		t.Fatal("value=high node was not always included")
	}
}
