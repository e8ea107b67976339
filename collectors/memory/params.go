package memory

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// maxPID is the largest pid Linux can hand out (PID_MAX_LIMIT on 64-bit).
const maxPID = 1 << 22

// decodeParams decodes raw into v, refusing unknown fields so that a
// misspelt parameter fails the hunt instead of being silently ignored.
// Empty input leaves v at its zero value.
func decodeParams(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode params: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("decode params: trailing data")
	}
	return nil
}

// checkPID refuses pids no process can have.
func checkPID(pid int64) error {
	if pid <= 0 || pid > maxPID {
		return fmt.Errorf("pid %d out of range 1..%d", pid, maxPID)
	}
	return nil
}

// checkSize refuses negative sizes and sizes over ceiling; 0 stands for
// the default.
func checkSize(field string, n, ceiling int64) error {
	if n < 0 || n > ceiling {
		return fmt.Errorf("%s %d out of range 0..%d", field, n, ceiling)
	}
	return nil
}
