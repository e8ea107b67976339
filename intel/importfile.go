package intel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// ImportFile imports one intelligence file, choosing the importer by
// extension (.csv, .yar, .yara) or, for JSON, by content: a STIX bundle or
// object has "type", a MISP export has "Event" or "response". Only regular
// files are read: symlinks, FIFOs and devices are refused.
func ImportFile(path string, now time.Time) (Import, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Import{}, fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return Import{}, fmt.Errorf("import %s: not a regular file", path)
	}
	if fi.Size() > MaxImportBytes {
		return Import{}, fmt.Errorf("import %s: %d bytes, over %d", path, fi.Size(),
			MaxImportBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return Import{}, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	data, err := readBounded(f, path)
	if err != nil {
		return Import{}, err
	}

	var imp Import
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		imp, err = ImportCSV(bytes.NewReader(data))
	case ".yar", ".yara":
		imp, err = ImportYARA(filepath.Base(path), bytes.NewReader(data))
	case ".json":
		imp, err = importJSON(data, now)
	default:
		return Import{}, fmt.Errorf("import %s: unknown extension %q: want .json, .csv, "+
			".yar or .yara", path, ext)
	}
	if err != nil {
		return Import{}, fmt.Errorf("import %s: %w", path, err)
	}
	if imp.Meta.Name == "" {
		imp.Meta.Name = filepath.Base(path)
	}
	return imp, nil
}

// importJSON tells STIX from MISP by their top-level keys.
func importJSON(data []byte, now time.Time) (Import, error) {
	var probe struct {
		Type     *string          `json:"type"`
		Event    *json.RawMessage `json:"Event"`
		Response *json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Import{}, jsonError(data, "json intel", err)
	}
	switch {
	case probe.Event != nil || probe.Response != nil:
		return ImportMISP(bytes.NewReader(data))
	case probe.Type != nil:
		return ImportSTIX(bytes.NewReader(data), now)
	}
	return ImportMISP(bytes.NewReader(data))
}

// Adds turns imported indicators into set updates stamped by clock, for
// Set.ApplyAll or for gossip as an intel task.
func Adds(iocs []tasks.IoC, clock *Clock, origin string) []Update {
	out := make([]Update, len(iocs))
	for i, c := range iocs {
		out[i] = Update{Op: OpAdd, IoC: c, Clock: clock.Now(), Origin: origin}
	}
	return out
}

// Removes is Adds for withdrawing indicators.
func Removes(iocs []tasks.IoC, clock *Clock, origin string) []Update {
	out := Adds(iocs, clock, origin)
	for i := range out {
		out[i].Op = OpRemove
	}
	return out
}
