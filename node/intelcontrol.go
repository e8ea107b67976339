package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/huntmesh/huntmesh/intel"
	"github.com/huntmesh/huntmesh/store"
	"github.com/huntmesh/huntmesh/tasks"
)

// IntelRequest is the intel part of a control request with Op "intel".
type IntelRequest struct {
	// Action is status, list, issue or export.
	Action string `json:"action"`

	// Envelopes are signed intel updates, for issue. A control request
	// line is capped at 1 MiB, so callers send large imports in batches.
	Envelopes [][]byte `json:"envelopes,omitempty"`

	// Type keeps only indicators of this type, for list.
	Type string `json:"type,omitempty"`

	// Since and Limit bound the retro-hunt detections of detections:
	// event time at or after Since, at most Limit of them (0: no limit).
	Since time.Time `json:"since,omitzero"`
	Limit int       `json:"limit,omitempty"`
}

// IntelResponse is the intel part of a control response.
type IntelResponse struct {
	Status    *IntelStatus  `json:"status,omitempty"`
	IoCs      []tasks.IoC   `json:"iocs,omitempty"`
	Envelopes [][]byte      `json:"envelopes,omitempty"`
	Issued    []IntelIssued `json:"issued,omitempty"`

	// Detections are retro-hunt detections, for detections.
	Detections []tasks.Detection `json:"detections,omitempty"`
}

// IntelIssued is the outcome of one update handed to the node.
type IntelIssued struct {
	ID      string `json:"id"`
	Changed int    `json:"changed"`
	Error   string `json:"error,omitempty"`
}

// IntelStatus describes a node's intel set.
type IntelStatus struct {
	// Digest is equal on nodes holding the same set.
	Digest string `json:"digest"`

	// Updates counts the signed updates held; Identities counts the
	// indicators known, removed ones included; Active those that match.
	Updates    int            `json:"updates"`
	Identities int            `json:"identities"`
	Active     int            `json:"active"`
	ByType     map[string]int `json:"by_type,omitempty"`

	// Version is the set's local change counter.
	Version uint64 `json:"version"`

	// Clock is the latest timestamp the node issued or saw; analysts'
	// tools stamp new ops after it.
	Clock intel.HLC `json:"clock"`

	// Refused counts updates refused for good since start.
	Refused int `json:"refused"`

	// LeftOut counts held indicators the matcher left out, such as
	// expressions past its cap that came from peers; LeftOutReason says
	// why the first was.
	LeftOut       int    `json:"left_out,omitempty"`
	LeftOutReason string `json:"left_out_reason,omitempty"`

	// Retro is the last retro-hunt.
	Retro RetroReport `json:"retro"`

	// Synced is when each peer last completed an anti-entropy round.
	Synced map[string]time.Time `json:"synced,omitempty"`
}

// controlPage bounds the indicators or updates in one response line.
const (
	controlIoCPage   = 1000
	controlBytesPage = 2 << 20
)

// IntelStatus reports the node's intel set.
func (n *Node) IntelStatus() IntelStatus {
	in := n.intel
	active := in.set.Active(time.Now())
	st := IntelStatus{
		Digest: in.digest(), Identities: in.set.Len(), Active: len(active),
		Version: in.set.Version(), Clock: in.clock.Now(), ByType: map[string]int{},
		Synced: map[string]time.Time{},
	}
	for _, ioc := range active {
		st.ByType[ioc.Type]++
	}
	if r := in.sharedMatcher().Rejected(); len(r) > 0 {
		st.LeftOut, st.LeftOutReason = len(r), r[0].Reason
	}
	in.mu.Lock()
	st.Updates = len(in.order)
	st.Refused = len(in.refused)
	st.Retro = in.retro
	for p, t := range in.synced {
		st.Synced[p] = t
	}
	in.mu.Unlock()
	return st
}

// serveIntel answers the control op "intel".
func (n *Node) serveIntel(ctx context.Context, req *IntelRequest, send func(Response) bool) {
	if req == nil {
		send(Response{Error: "intel: request has no intel part", Done: true})
		return
	}
	switch req.Action {
	case "status":
		st := n.IntelStatus()
		send(Response{Intel: &IntelResponse{Status: &st}, Done: true})
	case "list":
		var page []tasks.IoC
		for _, ioc := range n.IntelSet() {
			if req.Type != "" && ioc.Type != req.Type {
				continue
			}
			page = append(page, ioc)
			if len(page) == controlIoCPage {
				if !send(Response{Intel: &IntelResponse{IoCs: page}}) {
					return
				}
				page = nil
			}
		}
		send(Response{Intel: &IntelResponse{IoCs: page}, Done: true})
	case "issue":
		var out []IntelIssued
		for _, raw := range req.Envelopes {
			id, changed, err := n.IssueIntel(ctx, raw)
			r := IntelIssued{ID: id, Changed: changed}
			if err != nil {
				r.Error = err.Error()
			}
			out = append(out, r)
		}
		send(Response{Intel: &IntelResponse{Issued: out}, Done: true})
	case "export":
		n.exportIntel(send)
	case "detections":
		n.retroDetections(ctx, req, send)
	default:
		n.count("control/bad-request")
		send(Response{Error: fmt.Sprintf("intel: unknown action %q (want status, list, issue, "+
			"export, detections)", req.Action), Done: true})
	}
}

// controlDetectionPage bounds the detections in one response line; each
// carries its record.
const controlDetectionPage = 200

// errStopped ends a store scan when the client went away.
var errStopped = errors.New("client went away")

// retroDetections streams the detections retro-hunts stored on this node,
// in event time order.
func (n *Node) retroDetections(ctx context.Context, req *IntelRequest,
	send func(Response) bool) {
	if req.Limit < 0 {
		send(Response{Error: fmt.Sprintf("intel detections: limit %d is negative", req.Limit),
			Done: true})
		return
	}
	var page []tasks.Detection
	f := store.Filter{TaskID: RetroTaskID, Since: req.Since, Limit: req.Limit}
	err := n.store.Detections(ctx, f, func(d tasks.Detection) error {
		page = append(page, d)
		if len(page) == controlDetectionPage {
			if !send(Response{Intel: &IntelResponse{Detections: page}}) {
				return errStopped
			}
			page = nil
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		return
	}
	if err != nil {
		send(Response{Error: "intel detections: " + err.Error(), Done: true})
		return
	}
	send(Response{Intel: &IntelResponse{Detections: page}, Done: true})
}

// exportIntel streams every held update, in arrival order, in pages.
func (n *Node) exportIntel(send func(Response) bool) {
	in := n.intel
	in.mu.Lock()
	ids := append([]string(nil), in.order...)
	in.mu.Unlock()
	var page [][]byte
	size := 0
	for _, id := range ids {
		raw, ok, err := n.store.GetMeta(metaIntelPrefix + id)
		if err != nil {
			send(Response{Error: "intel export: " + err.Error(), Done: true})
			return
		}
		if !ok {
			continue
		}
		if size+len(raw) > controlBytesPage && len(page) > 0 {
			if !send(Response{Intel: &IntelResponse{Envelopes: page}}) {
				return
			}
			page, size = nil, 0
		}
		page = append(page, raw)
		size += len(raw)
	}
	send(Response{Intel: &IntelResponse{Envelopes: page}, Done: true})
}

// Intel sends an intel request and hands each response to fn.
func (c *Client) Intel(ctx context.Context, req IntelRequest, fn func(*IntelResponse) error) error {
	return c.Call(ctx, Request{Op: "intel", Intel: &req}, func(r Response) error {
		if r.Intel == nil {
			if r.Done {
				return nil
			}
			return errors.New("intel: node sent a response without intel")
		}
		return fn(r.Intel)
	})
}
