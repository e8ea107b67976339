package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/huntmesh/huntmesh/tasks"
)

// valueVersion is the first byte of every record and detection value, so
// the encoding can change without misreading old stores.
const valueVersion = 1

// header is the uncompressed prefix of a record or detection value: what
// filters and the size cap need without decoding the JSON body.
type header struct {
	taskID string
	kind   string
	host   string
}

// encodeValue lays out version, three length-prefixed strings, then the
// JSON body.
func encodeValue(h header, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	n := 1 + 3*binary.MaxVarintLen64 + len(h.taskID) + len(h.kind) + len(h.host)
	b := make([]byte, 0, n+len(body))
	b = append(b, valueVersion)
	for _, s := range []string{h.taskID, h.kind, h.host} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, body...), nil
}

// decodeHeader splits a stored value into its header and JSON body. The
// body aliases val.
func decodeHeader(val []byte) (header, []byte, error) {
	var h header
	if len(val) == 0 || val[0] != valueVersion {
		return h, nil, fmt.Errorf("value version: %w", ErrCorrupt)
	}
	rest := val[1:]
	var fields [3]string
	for i := range fields {
		n, used := binary.Uvarint(rest)
		if used <= 0 || n > uint64(len(rest)-used) {
			return h, nil, fmt.Errorf("value header: %w", ErrCorrupt)
		}
		rest = rest[used:]
		fields[i] = string(rest[:n])
		rest = rest[n:]
	}
	h.taskID, h.kind, h.host = fields[0], fields[1], fields[2]
	return h, rest, nil
}

// decodeJSON decodes body into v keeping integers integral: numbers become
// int64 when they are whole and in range, float64 otherwise, and lists of
// strings become []string, the types records are written with.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w: %w", ErrCorrupt, err)
	}
	return nil
}

// normalizeRecord rewrites the decoded field values of r in place.
func normalizeRecord(r *tasks.Record) {
	for k, v := range r.Fields {
		r.Fields[k] = normalizeValue(v)
	}
}

// normalizeValue turns json.Number and []any into the record value types.
func normalizeValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case []any:
		strs := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				break
			}
			strs = append(strs, s)
		}
		if len(strs) == len(x) {
			return strs
		}
		for i, e := range x {
			x[i] = normalizeValue(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(e)
		}
		return x
	}
	return v
}

// decodeRecord decodes a record value.
func decodeRecord(val []byte) (tasks.Record, error) {
	var r tasks.Record
	_, body, err := decodeHeader(val)
	if err != nil {
		return r, err
	}
	if err := decodeJSON(body, &r); err != nil {
		return r, err
	}
	normalizeRecord(&r)
	return r, nil
}

// decodeDetection decodes a detection value.
func decodeDetection(val []byte) (tasks.Detection, error) {
	var d tasks.Detection
	_, body, err := decodeHeader(val)
	if err != nil {
		return d, err
	}
	if err := decodeJSON(body, &d); err != nil {
		return d, err
	}
	normalizeRecord(&d.Record)
	return d, nil
}

// decodeResult decodes a stored result.
func decodeResult(val []byte) (tasks.Result, error) {
	var r tasks.Result
	if err := decodeJSON(val, &r); err != nil {
		return r, err
	}
	for i := range r.Records {
		normalizeRecord(&r.Records[i])
	}
	for i := range r.Detections {
		normalizeRecord(&r.Detections[i].Record)
	}
	return r, nil
}
