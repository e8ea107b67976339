package node

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/huntmesh/huntmesh/tasks"
)

// HostRisk is one host's risk score and why.
type HostRisk struct {
	Host       string   `json:"host"`
	Score      float64  `json:"score"`
	Detections int      `json:"detections"`
	Reasons    []string `json:"reasons,omitempty"`
}

// Risk weights. Each distinct indicator or rule a host matched counts
// once at its severity's weight, raised when the intel ties it to a
// threat actor or an ATT&CK technique; further hits of the same indicator
// add a little (log-scaled), so a busy log cannot outweigh breadth.
var (
	severityWeight = map[string]float64{"low": 1, "medium": 3, "high": 6, "critical": 10}
)

const (
	actorFactor     = 1.5
	techniqueFactor = 1.2
	repeatFactor    = 0.5
	topReasons      = 3

	// ruleFactor weighs a hunter's rule below an indicator: a rule is a
	// heuristic, an indicator ties the record to known activity.
	ruleFactor = 0.75
)

// RankHosts scores hosts from their detections, highest first. Hosts in
// hosts with no detection are listed last with score 0, so a clean host
// is shown as clean rather than left out.
func RankHosts(dets []tasks.Detection, hosts []string) []HostRisk {
	type ind struct {
		weight float64
		hits   int
		label  string
	}
	per := map[string]map[string]*ind{}
	count := map[string]int{}
	for _, d := range dets {
		m := per[d.Host]
		if m == nil {
			m = map[string]*ind{}
			per[d.Host] = m
		}
		count[d.Host]++
		key := d.IoCType + ":" + d.IoCValue
		if i := m[key]; i != nil {
			i.hits++
			continue
		}
		w, why := indicatorWeight(d)
		m[key] = &ind{weight: w, hits: 1, label: fmt.Sprintf("%s %s (%s)", d.IoCType,
			shorten(d.IoCValue), why)}
	}
	var out []HostRisk
	for host, m := range per {
		hr := HostRisk{Host: host, Detections: count[host]}
		list := make([]*ind, 0, len(m))
		for _, i := range m {
			contrib := i.weight * (1 + repeatFactor*math.Log2(float64(i.hits)))
			hr.Score += contrib
			list = append(list, i)
		}
		sort.Slice(list, func(a, b int) bool {
			if list[a].weight != list[b].weight {
				return list[a].weight > list[b].weight
			}
			return list[a].label < list[b].label
		})
		for _, i := range list[:min(topReasons, len(list))] {
			hr.Reasons = append(hr.Reasons, i.label)
		}
		hr.Score = math.Round(hr.Score*10) / 10
		out = append(out, hr)
	}
	for _, h := range hosts {
		if per[h] == nil {
			out = append(out, HostRisk{Host: h})
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Score != out[b].Score {
			return out[a].Score > out[b].Score
		}
		return out[a].Host < out[b].Host
	})
	return out
}

// indicatorWeight weighs one indicator by severity and intel context and
// says why in a few words.
func indicatorWeight(d tasks.Detection) (float64, string) {
	sev := strings.ToLower(d.Severity)
	w, ok := severityWeight[sev]
	if !ok {
		w, sev = severityWeight["medium"], "medium"
	}
	why := []string{sev}
	if d.IoCType == "rule" {
		w *= ruleFactor
		why = append(why, "rule")
	}
	var actor string
	var techniques []string
	for _, t := range d.Tags {
		switch {
		case strings.HasPrefix(t, "actor:") && actor == "":
			actor = strings.TrimPrefix(t, "actor:")
		case isTechnique(t) && !slices.Contains(techniques, t):
			techniques = append(techniques, t)
		}
	}
	if actor != "" {
		w *= actorFactor
		why = append(why, "actor "+actor)
	}
	if len(techniques) > 0 {
		// The factor counts once; the reason names the first technique
		// and says how many more the intel gives, rather than pick one.
		w *= techniqueFactor
		t := "technique " + techniques[0]
		if len(techniques) > 1 {
			t += fmt.Sprintf(" +%d", len(techniques)-1)
		}
		why = append(why, t)
	}
	return w, strings.Join(why, ", ")
}

// isTechnique reports whether t looks like an ATT&CK technique ID (T1496,
// T1037.004).
func isTechnique(t string) bool {
	if len(t) < 5 || t[0] != 'T' {
		return false
	}
	for _, c := range t[1:] {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
