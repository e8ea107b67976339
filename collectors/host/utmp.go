package host

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

// utmpSize is the size of one struct utmp record on Linux (glibc, both
// 64-bit x86 and arm64, which keep 32-bit time fields for compatibility).
const utmpSize = 384

// Offsets of the utmp fields we read.
const (
	utmpTypeOff = 0
	utmpUserOff = 44
	utmpUserLen = 32
	utmpHostOff = 76
	utmpHostLen = 256
	utmpSecOff  = 340
)

// utmpUserProcess is ut_type USER_PROCESS: a login session.
const utmpUserProcess = 7

// maxWtmpBytes bounds how much of wtmp is read, from its end: 8 MiB holds
// about 21,000 records, weeks of logins on a busy server. Older logins are
// not reported.
const maxWtmpBytes = 8 << 20

// login is the newest login of one user seen in wtmp.
type login struct {
	at   time.Time
	from string
}

// parseWtmp decodes whole utmp records in b and returns each user's newest
// login session. A trailing partial record is ignored.
func parseWtmp(b []byte) map[string]login {
	out := map[string]login{}
	for off := 0; off+utmpSize <= len(b); off += utmpSize {
		r := b[off : off+utmpSize]
		if int16(binary.LittleEndian.Uint16(r[utmpTypeOff:])) != utmpUserProcess {
			continue
		}
		user := cString(r[utmpUserOff : utmpUserOff+utmpUserLen])
		if user == "" {
			continue
		}
		sec := int64(int32(binary.LittleEndian.Uint32(r[utmpSecOff:])))
		at := time.Unix(sec, 0).UTC()
		if prev, ok := out[user]; ok && !at.After(prev.at) {
			continue
		}
		out[user] = login{at: at, from: cString(r[utmpHostOff : utmpHostOff+utmpHostLen])}
	}
	return out
}

// cString is the text before the first NUL, with invalid bytes kept out
// of records by quoting when needed.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// readWtmp reads at most the last maxWtmpBytes of a wtmp file, aligned to
// whole records. Only a regular file is read.
func readWtmp(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w", path, errNotRegular)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	size := fi.Size() - fi.Size()%utmpSize
	start := int64(0)
	if size > maxWtmpBytes {
		start = size - maxWtmpBytes/utmpSize*utmpSize
	}
	b := make([]byte, size-start)
	n, err := f.ReadAt(b, start)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b[:n], nil
}
