package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// arrayKeys name the members of a JSON document that hold the events
// ({"records": [...]} from Azure diagnostic exports, {"value": [...]} from
// REST list calls).
var arrayKeys = map[string]bool{"records": true, "value": true, "Records": true}

// ndjson reads one JSON object a line.
func (in *ingest) ndjson(r *bufio.Reader) error {
	lr := &lineReader{r: r, max: MaxLine}
	for {
		line, long, err := lr.next()
		if err != nil {
			return eofNil(err)
		}
		where := fmt.Sprintf("%s:%d", in.src.Path, lr.n)
		if long {
			in.env.Stats.Skip("line too long", where)
			continue
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		obj, ok := decodeLine(line)
		if !ok {
			in.env.Stats.Skip("bad json", where)
			continue
		}
		if err := in.object(obj, where); err != nil {
			return err
		}
	}
}

// decodeLine decodes one complete JSON object, numbers kept exact.
func decodeLine(line []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // trailing data after the object
	}
	return obj, true
}

// jsonStarts reports whether b begins with one complete JSON value, so
// that a first line with trailing garbage still reads as NDJSON.
func jsonStarts(b []byte) bool {
	var v json.RawMessage
	return json.NewDecoder(bytes.NewReader(b)).Decode(&v) == nil
}

// object maps one decoded object, expanding an embedded records array.
func (in *ingest) object(obj map[string]any, where string) error {
	for k := range arrayKeys {
		if arr, ok := obj[k].([]any); ok && len(obj) <= 2 {
			for i, e := range arr {
				if err := in.value(e, fmt.Sprintf("%s[%d]", where, i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	m := in.mapper
	if m == nil {
		m = detect(obj)
	}
	rec, reason := m(obj, in.p.loc)
	if reason != "" {
		in.env.Stats.Skip(reason, where)
		return nil
	}
	return emitErr(in.emit(rec, where))
}

// value maps one element of an events array.
func (in *ingest) value(v any, where string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		in.env.Stats.Skip("not an object", where)
		return nil
	}
	return in.object(obj, where)
}

// capReader fails once more than left bytes are read since the last reset,
// bounding what the JSON decoder may buffer for one element.
type capReader struct {
	r    io.Reader
	left int
}

var errTooBig = errors.New("json element over size cap")

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errTooBig
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}

// jsonDocument streams a JSON document: a top-level array of events, an
// object whose "records" (or "value") member is the array, a single event
// object, or several such values in a row. Elements are decoded one at a
// time, so a large export is never held whole.
func (in *ingest) jsonDocument(r *bufio.Reader) error {
	cr := &capReader{r: r, left: maxObject}
	dec := json.NewDecoder(cr)
	dec.UseNumber()
	n := 0 // events seen, for "file:#n" samples
	where := func() string { return fmt.Sprintf("%s:#%d", in.src.Path, n) }
	bad := func(err error) error {
		if _, ok := isEmitErr(err); ok {
			return err
		}
		if err := in.ctx.Err(); err != nil {
			return err
		}
		n++
		in.env.Stats.Skip("bad json", fmt.Sprintf("%s:@%d: %v", in.src.Path,
			dec.InputOffset(), err))
		return nil // the rest of a broken document cannot be found again
	}

	for {
		cr.left = maxObject
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return bad(err)
		}
		switch tok {
		case json.Delim('['):
			if err := in.streamArray(dec, cr, &n); err != nil {
				return bad(err)
			}
			continue
		case json.Delim('{'):
		default:
			n++
			in.env.Stats.Skip("not an object", where())
			continue
		}

		// An object: gather members, streaming an events array if found.
		top := map[string]any{}
		streamed := false
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return bad(err)
			}
			key, _ := kt.(string)
			vt, err := dec.Token()
			if err != nil {
				return bad(err)
			}
			if vt == json.Delim('[') && arrayKeys[key] {
				if err := in.streamArray(dec, cr, &n); err != nil {
					return bad(err)
				}
				streamed = true
				continue
			}
			v, err := rest(dec, vt, 0)
			if err != nil {
				return bad(err)
			}
			top[key] = v
		}
		if _, err := dec.Token(); err != nil { // the closing '}'
			return bad(err)
		}
		if !streamed {
			n++
			if err := in.object(top, where()); err != nil {
				return err
			}
		}
	}
}

// streamArray decodes array elements after '[' up to and including ']'.
func (in *ingest) streamArray(dec *json.Decoder, cr *capReader, n *int) error {
	for dec.More() {
		cr.left = maxObject
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*n++
		if err := in.value(v, fmt.Sprintf("%s:#%d", in.src.Path, *n)); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// maxDepth bounds nesting in rest, against stack exhaustion.
const maxDepth = 256

// rest builds the value that starts with token tok from the decoder.
func rest(dec *json.Decoder, tok json.Token, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("json nested too deep")
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			vt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := rest(dec, vt, depth+1)
			if err != nil {
				return nil, err
			}
			key, _ := kt.(string)
			obj[key] = v
		}
		_, err := dec.Token()
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			vt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := rest(dec, vt, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}

// eofNil turns io.EOF into nil.
func eofNil(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// unquoteJSON decodes a JSON-encoded string held inside another document
// (Azure's responseBody), bounded to keep a hostile field cheap.
func unquoteJSON(s string) map[string]any {
	s = strings.TrimSpace(s)
	if len(s) == 0 || len(s) > 1<<20 || s[0] != '{' {
		return nil
	}
	obj, _ := decodeLine([]byte(s))
	return obj
}
