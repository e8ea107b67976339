package intel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// jsonError turns a decoding error into one that names the line.
func jsonError(data []byte, what string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && se.Offset >= int64(len(data)):
		return fmt.Errorf("decode %s: truncated at line %d: %w", what,
			lineAt(data, se.Offset), err)
	case errors.As(err, &se):
		return fmt.Errorf("decode %s: line %d: %w", what, lineAt(data, se.Offset), err)
	case errors.As(err, &te):
		return fmt.Errorf("decode %s: line %d: field %s: %w", what,
			lineAt(data, te.Offset), te.Field, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("decode %s: truncated at line %d: %w", what,
			lineAt(data, int64(len(data))), err)
	}
	return fmt.Errorf("decode %s: %w", what, err)
}
