package files

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// maxPasswdBytes bounds how much of /etc/passwd is read.
const maxPasswdBytes = 4 << 20

// account is one /etc/passwd line.
type account struct {
	name string
	uid  int64
	home string
}

// accounts maps uids to names for one Root.
type accounts struct {
	byUID map[int64]string
	list  []account
}

// readAccounts parses Root's /etc/passwd; a missing or unreadable file
// yields an empty set, so owners are then reported by number only.
func readAccounts(root string) *accounts {
	a := &accounts{byUID: map[int64]string{}}
	f, err := yarascan.OpenRegular(hostToFS(root, "/etc/passwd"))
	if err != nil {
		return a
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxPasswdBytes))
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) < 7 || strings.HasPrefix(parts[0], "#") {
			continue
		}
		uid, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			continue
		}
		if _, dup := a.byUID[uid]; !dup {
			a.byUID[uid] = parts[0]
		}
		a.list = append(a.list, account{name: parts[0], uid: uid, home: parts[5]})
	}
	return a
}

// owner names uid, or "" when unknown.
func (a *accounts) owner(uid int64) string { return a.byUID[uid] }

// hostToFS maps a host path to the path under root that holds it. The
// host path is cleaned first, so ".." cannot climb out of root.
func hostToFS(root, hostPath string) string {
	return filepath.Join(root, path.Clean("/"+hostPath))
}

// isExcluded reports whether hostPath is one of excl or lies under one.
func isExcluded(excl []string, hostPath string) bool {
	for _, e := range excl {
		e = path.Clean(e)
		if hostPath == e || (strings.HasPrefix(hostPath, e) &&
			(e == "/" || hostPath[len(e)] == '/')) {
			return true
		}
	}
	return false
}

// statFields returns the schema's common metadata for fi.
func statFields(fi fs.FileInfo, acc *accounts) map[string]any {
	return metaFields(metaOf(fi), fi, acc)
}

// metaField is one metadata field with its value already boxed.
type metaField struct {
	k string
	v any
}

// metaOf returns the metadata of fi that its cache key fixes: size and
// mtime are in the key, and a change of mode or owner changes ctime, which
// is too. A cached digest keeps these, formatted and boxed once, so that a
// re-scan hit does not format them again.
func metaOf(fi fs.FileInfo) []metaField {
	m := make([]metaField, 0, 6)
	m = append(m, metaField{"size", fi.Size()}, metaField{"mode", fi.Mode().String()},
		metaField{"mtime", rfc3339(fi.ModTime())})
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m = append(m, metaField{"uid", int64(st.Uid)}, metaField{"gid", int64(st.Gid)},
			metaField{"ctime", rfc3339(time.Unix(st.Ctim.Sec, st.Ctim.Nsec))})
	}
	return m
}

// metaFields builds a record's field map from fixed metadata and adds
// what the key does not fix: the owner's name (from this run's root) and
// the access time.
func metaFields(fixed []metaField, fi fs.FileInfo, acc *accounts) map[string]any {
	// Sized for the whole file record (metadata, path, hashes, type,
	// rules) so that it never grows.
	f := make(map[string]any, 16)
	for _, m := range fixed {
		f[m.k] = m.v
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if name := acc.owner(int64(st.Uid)); name != "" {
			f["owner"] = name
		}
		f["atime"] = rfc3339(time.Unix(st.Atim.Sec, st.Atim.Nsec))
	}
	return f
}

// setPath stores the host path and name. Go strings keep a non-UTF-8 name's
// raw bytes, but JSON encoding replaces invalid bytes, so such names also
// get path_b64 (standard base64 of the raw bytes).
func setPath(fields map[string]any, hostPath string) {
	fields["path"] = hostPath
	fields["name"] = path.Base(hostPath)
	if !utf8.ValidString(hostPath) {
		fields["path_b64"] = base64.StdEncoding.EncodeToString([]byte(hostPath))
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// keyOf returns the cache key for fi.
func keyOf(fi fs.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{
		dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(),
		mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec,
		ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, true
}

// sniffLen is how many leading bytes fileType looks at.
const sniffLen = 512

// fileType names the format of a file from its first bytes.
func fileType(head []byte) string {
	switch {
	case len(head) == 0:
		return "empty"
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return "elf"
	case bytes.HasPrefix(head, []byte("MZ")):
		return "pe"
	case bytes.HasPrefix(head, []byte("#!")):
		return "script"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "zip"
	}
	if bytes.IndexByte(head, 0) >= 0 || !validUTF8Prefix(head) {
		return "data"
	}
	if t := bytes.TrimLeft(head, " \t\r\n\ufeff"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return "json"
	}
	return "text"
}

// validUTF8Prefix is utf8.Valid, forgiving a rune cut at the end of head.
func validUTF8Prefix(b []byte) bool {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return true
		}
		b = b[:len(b)-1]
	}
	return utf8.Valid(b)
}

// yaraFileType is the value of YARA's filetype variable for our type, in
// the spelling public rule sets test for.
func yaraFileType(t string) string {
	if t == "pe" {
		return "EXE"
	}
	return strings.ToUpper(t)
}

// yaraVars are the external variables for scanning hostPath.
func yaraVars(hostPath, ftype string) map[string]string {
	return map[string]string{
		"filename":  path.Base(hostPath),
		"filepath":  hostPath,
		"extension": path.Ext(hostPath),
		"filetype":  yaraFileType(ftype),
	}
}
