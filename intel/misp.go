package intel

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// mispEvent holds the fields of a MISP event the importer reads. Feeds
// write numbers and booleans as strings ("1", "0") or as JSON values, so
// those fields are decoded loosely.
type mispEvent struct {
	ID            json.RawMessage `json:"id"`
	UUID          string          `json:"uuid"`
	Info          string          `json:"info"`
	ThreatLevelID json.RawMessage `json:"threat_level_id"`
	Date          json.RawMessage `json:"date"`
	Tag           []mispTag       `json:"Tag"`
	Attribute     []mispAttribute `json:"Attribute"`
	Object        []mispObject    `json:"Object"`
}

type mispTag struct {
	Name string `json:"name"`
}

type mispAttribute struct {
	UUID           string          `json:"uuid"`
	Type           string          `json:"type"`
	Value          string          `json:"value"`
	ToIDs          json.RawMessage `json:"to_ids"`
	Deleted        json.RawMessage `json:"deleted"`
	Comment        string          `json:"comment"`
	ObjectRelation string          `json:"object_relation"`
	FirstSeen      json.RawMessage `json:"first_seen"`
	Tag            []mispTag       `json:"Tag"`
}

type mispObject struct {
	UUID      string          `json:"uuid"`
	Name      string          `json:"name"`
	Attribute []mispAttribute `json:"Attribute"`
}

// ImportMISP reads a MISP event export: {"Event": {...}}, a bare event, or
// {"response": [{"Event": {...}}, ...]}. Only attributes marked to_ids are
// taken, including those inside objects; composite types (ip-dst|port,
// filename|sha256, domain|ip) are split. Event and attribute tags are
// carried, with galaxy tags shortened ("actor:X", ATT&CK IDs). Severity
// follows the event's threat level.
//
// Invalid JSON, or an attribute whose fields have the wrong types, fails
// the whole import with an error naming the line or the attribute.
func ImportMISP(r io.Reader) (Import, error) {
	data, err := readBounded(r, "misp event")
	if err != nil {
		return Import{}, err
	}
	var top struct {
		Event    *json.RawMessage `json:"Event"`
		Response []struct {
			Event *json.RawMessage `json:"Event"`
		} `json:"response"`
		Info      *string          `json:"info"`
		Attribute *json.RawMessage `json:"Attribute"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return Import{}, jsonError(data, "misp event", err)
	}
	var raws []json.RawMessage
	switch {
	case top.Event != nil:
		raws = append(raws, *top.Event)
	case top.Response != nil:
		for _, r := range top.Response {
			if r.Event != nil {
				raws = append(raws, *r.Event)
			}
		}
	case top.Info != nil || top.Attribute != nil:
		raws = append(raws, data)
	default:
		return Import{}, fmt.Errorf("decode misp event: no \"Event\", \"response\" or " +
			"event fields: not a MISP event export")
	}

	// Decode all events before taking anything.
	events := make([]mispEvent, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &events[i]); err != nil {
			return Import{}, fmt.Errorf("decode misp event %d: %w", i, err)
		}
		if err := events[i].check(); err != nil {
			return Import{}, fmt.Errorf("decode misp event %d (%s): %w", i, events[i].UUID, err)
		}
	}

	c := newCollector("misp")
	for i := range events {
		e := &events[i]
		if c.imp.Meta.Name == "" {
			c.imp.Meta.Name = e.Info
		}
		c.mispEvent(e)
	}
	return c.imp, nil
}

// check validates the loosely typed fields of every attribute.
func (e *mispEvent) check() error {
	all := func(attrs []mispAttribute, where string) error {
		for i, a := range attrs {
			if _, err := looseBool(a.ToIDs); err != nil {
				return fmt.Errorf("%sattribute %d (%s): to_ids: %w", where, i, a.UUID, err)
			}
			if _, err := looseBool(a.Deleted); err != nil {
				return fmt.Errorf("%sattribute %d (%s): deleted: %w", where, i, a.UUID, err)
			}
			if a.Type == "" {
				return fmt.Errorf("%sattribute %d (%s): no type", where, i, a.UUID)
			}
		}
		return nil
	}
	if err := all(e.Attribute, ""); err != nil {
		return err
	}
	for i, o := range e.Object {
		if err := all(o.Attribute, fmt.Sprintf("object %d (%s) ", i, o.UUID)); err != nil {
			return err
		}
	}
	return nil
}

// mispTime reads an event date ("2024-08-06") or an attribute's
// first_seen (RFC 3339); anything else, null included, is no time.
func mispTime(raw json.RawMessage) time.Time {
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil && t.Year() >= 1970 && t.Year() <= 2200 {
			return t.UTC()
		}
	}
	return time.Time{}
}

// looseBool reads true/false, 1/0, "1"/"0", "true"/"false"; absent is false.
func looseBool(raw json.RawMessage) (bool, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	switch strings.ToLower(s) {
	case "", "null", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("want a boolean, got %s", raw)
}

// mispEvent takes one event's attributes.
func (c *collector) mispEvent(e *mispEvent) {
	var tags []string
	for _, t := range e.Tag {
		tags = addTag(tags, mispTagName(t.Name))
	}
	base := tasks.IoC{Severity: mispSeverity(e.ThreatLevelID), Source: "misp:" + e.UUID,
		Tags: tags, FirstSeen: mispTime(e.Date)}
	for _, a := range e.Attribute {
		c.mispAttribute(a, base)
	}
	for _, o := range e.Object {
		c.mispObject(o, base)
	}
}

// mispObject takes an object's attributes; an address and a destination
// port in one object (ip-port) become one address:port indicator.
func (c *collector) mispObject(o mispObject, base tasks.IoC) {
	var ip, port *mispAttribute
	nIP, nPort := 0, 0
	for i := range o.Attribute {
		a := &o.Attribute[i]
		ids, _ := looseBool(a.ToIDs)
		if !ids {
			continue
		}
		switch {
		case a.Type == "ip-dst" || (a.Type == "ip-src" && a.ObjectRelation == "ip"):
			ip, nIP = a, nIP+1
		case a.Type == "port" && a.ObjectRelation == "dst-port":
			port, nPort = a, nPort+1
		}
	}
	pair := nIP == 1 && nPort == 1
	for _, a := range o.Attribute {
		if pair && (a.UUID == ip.UUID && a.Value == ip.Value || a.UUID == port.UUID &&
			a.Value == port.Value) {
			continue
		}
		c.mispAttribute(a, base)
	}
	if pair {
		ioc := base
		ioc.Tags = mispTags(base.Tags, ip.Tag)
		ioc.Tags = addTag(ioc.Tags, "misp-object:"+o.Name)
		ioc.Type = tasks.IoCPort
		addr := ip.Value
		if strings.Contains(addr, ":") {
			addr = "[" + addr + "]"
		}
		ioc.Value = addr + ":" + strings.TrimSpace(port.Value)
		c.take("object "+o.Name+" ip+dst-port", ip.UUID, ioc)
	}
}

// mispTypes maps simple MISP attribute types to IoC types.
var mispTypes = map[string]string{
	"ip-dst": tasks.IoCIP, "ip-src": tasks.IoCIP, "ip": tasks.IoCIP,
	"domain": tasks.IoCDomain, "hostname": tasks.IoCDomain,
	"url": tasks.IoCURL, "md5": tasks.IoCMD5, "sha1": tasks.IoCSHA1,
	"sha256": tasks.IoCSHA256, "filename": tasks.IoCFileName,
	"port": tasks.IoCPort, "yara": tasks.IoCYARA,
	"process-name": tasks.IoCProcess,
}

// mispAttribute takes one attribute if it is meant for detection.
func (c *collector) mispAttribute(a mispAttribute, base tasks.IoC) {
	what, where := a.Type, a.UUID
	if ids, _ := looseBool(a.ToIDs); !ids {
		c.skip(what, where, "to_ids is not set: context, not for detection")
		return
	}
	if del, _ := looseBool(a.Deleted); del {
		c.skip(what, where, "deleted")
		return
	}
	ioc := base
	ioc.Tags = mispTags(base.Tags, a.Tag)
	if t := mispTime(a.FirstSeen); !t.IsZero() {
		ioc.FirstSeen = t
	}

	// Composite types carry two values separated by '|'.
	if left, right, ok := strings.Cut(a.Type, "|"); ok {
		lv, rv, ok := strings.Cut(a.Value, "|")
		if !ok {
			c.skip(what, where, "composite type without '|' in the value")
			return
		}
		switch {
		case (left == "ip-dst" || left == "ip-src") && right == "port":
			if strings.Contains(lv, ":") {
				lv = "[" + lv + "]"
			}
			ioc.Type, ioc.Value = tasks.IoCPort, lv+":"+rv
			c.take(what, where, ioc)
		case left == "filename" && (right == "md5" || right == "sha1" || right == "sha256"):
			ioc.Type, ioc.Value = right, rv
			ioc.Tags = addTag(slicesClip(ioc.Tags), "filename:"+lv)
			c.take(what, where, ioc)
		case left == "domain" && right == "ip":
			d := ioc
			d.Type, d.Value = tasks.IoCDomain, lv
			c.take(what, where, d)
			ioc.Type, ioc.Value = tasks.IoCIP, rv
			c.take(what, where, ioc)
		case left == "hostname" && right == "port":
			ioc.Type, ioc.Value = tasks.IoCDomain, lv
			c.take(what, where, ioc)
		default:
			c.skip(what, where, "composite type has no matching record fields")
		}
		return
	}

	typ, ok := mispTypes[a.Type]
	if !ok {
		c.skip(what, where, "attribute type has no matching record field")
		return
	}
	ioc.Type, ioc.Value = typ, a.Value
	switch {
	case typ == tasks.IoCIP && strings.Contains(a.Value, "/"):
		ioc.Type = tasks.IoCCIDR
	case typ == tasks.IoCFileName && strings.ContainsAny(a.Value, `/\`):
		ioc.Type = tasks.IoCPath
	case typ == tasks.IoCYARA:
		if err := validateYARA(a.UUID, a.Value); err != nil {
			c.skip(what, where, err.Error())
			return
		}
	}
	c.take(what, where, ioc)
}

// slicesClip forces the next append to copy, so attributes never share a
// tag array.
func slicesClip(s []string) []string { return s[:len(s):len(s)] }

// mispTags adds attribute tags to the event's.
func mispTags(event []string, attr []mispTag) []string {
	tags := slicesClip(event)
	for _, t := range attr {
		tags = addTag(tags, mispTagName(t.Name))
	}
	return tags
}

// mispTagName shortens galaxy tags: misp-galaxy:threat-actor="X" becomes
// actor:X, and an ATT&CK galaxy value "Name - T1496" becomes T1496. Other
// tags (tlp:amber) are kept as they are.
func mispTagName(name string) string {
	kind, value, ok := strings.Cut(name, "=")
	if !ok || !strings.HasPrefix(kind, "misp-galaxy:") {
		return name
	}
	value = strings.Trim(value, `"`)
	switch kind = strings.TrimPrefix(kind, "misp-galaxy:"); {
	case kind == "threat-actor":
		return "actor:" + value
	case strings.HasPrefix(kind, "mitre-"):
		if i := strings.LastIndex(value, " - "); i >= 0 {
			return value[i+3:]
		}
	}
	return kind + ":" + value
}

// mispSeverity maps threat_level_id: 1 high, 2 medium, 3 low.
func mispSeverity(raw json.RawMessage) string {
	switch strings.Trim(string(raw), `" `) {
	case "1":
		return "high"
	case "3":
		return "low"
	}
	return DefaultSeverity
}
