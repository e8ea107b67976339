package files

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/huntmesh/huntmesh/collectors"
	"github.com/huntmesh/huntmesh/collectors/yarascan"
)

// wholeReadMax is the largest file read into memory in one piece and
// scanned from that buffer. Larger files are streamed through the hashes
// and then scanned by libyara from the file descriptor (it maps the file,
// so the scan sees the whole content without seams either way).
const wholeReadMax = 1 << 20

// chunkSize is the read size for streamed files, and the grain at which
// the read budget is charged.
const chunkSize = 256 << 10

// errGrew reports a file that grew past max_size while being read.
var errGrew = errors.New("file grew past max_size")

// bufPool holds whole-file buffers of wholeReadMax+1 bytes.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, wholeReadMax+1)
	return &b
}}

// hasher computes the requested digests in one pass.
type hasher struct {
	md5, sha1, sha256 hash.Hash
	w                 io.Writer
}

func newHasher(want hashSet) *hasher {
	h := &hasher{}
	var ws []io.Writer
	if want.md5 {
		h.md5 = md5.New()
		ws = append(ws, h.md5)
	}
	if want.sha1 {
		h.sha1 = sha1.New()
		ws = append(ws, h.sha1)
	}
	if want.sha256 {
		h.sha256 = sha256.New()
		ws = append(ws, h.sha256)
	}
	h.w = io.MultiWriter(ws...)
	return h
}

// hasherPools keep hashers for reuse, one pool per combination of wanted
// digests (hashSet.index).
var hasherPools [8]sync.Pool

func (h hashSet) index() int {
	i := 0
	if h.md5 {
		i |= 1
	}
	if h.sha1 {
		i |= 2
	}
	if h.sha256 {
		i |= 4
	}
	return i
}

// getHasher returns a fresh hasher for want, reused when one is pooled.
// Give it back with putHasher once its digests are filled.
func getHasher(want hashSet) *hasher {
	if h, ok := hasherPools[want.index()].Get().(*hasher); ok {
		for _, x := range []hash.Hash{h.md5, h.sha1, h.sha256} {
			if x != nil {
				x.Reset()
			}
		}
		return h
	}
	return newHasher(want)
}

func putHasher(want hashSet, h *hasher) { hasherPools[want.index()].Put(h) }

// fill stores the finished digests in d.
func (h *hasher) fill(d *digest) {
	sum := func(x hash.Hash) string {
		if x == nil {
			return ""
		}
		return hex.EncodeToString(x.Sum(nil))
	}
	d.md5, d.sha1, d.sha256 = sum(h.md5), sum(h.sha1), sum(h.sha256)
}

// ruleSet is one compiled rule set the run scans with.
type ruleSet struct {
	rules *yarascan.Rules
	hash  string
}

// scanTimeout bounds one YARA scan of one file.
const scanTimeout = time.Minute

// digestFile reads f once, computing the wanted hashes and the file type,
// and scans it with each rule set. Small files are read whole when whole
// is set, otherwise streamed and scanned from the descriptor. size is the
// size at open; maxSize bounds what is read if the file grows meanwhile. A
// YARA failure (a timeout, say) does not lose the hashes: it is returned
// as yaraErr beside d.
//
// With hashLater set, a file of up to laterMax bytes is scanned but not
// hashed: a copy of its bytes comes back as later, from getLater, for the
// caller to hash on another goroutine and then give back with putLater.
func digestFile(ctx context.Context, env *collectors.Env, f *rawFile, hostPath string,
	size, maxSize int64, want hashSet, sets []ruleSet, whole, hashLater bool) (d *digest,
	later *[]byte, yaraErr, err error) {
	if whole && size <= wholeReadMax {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		n, err := readWhole(ctx, env, f, *bp, size)
		switch {
		case err == nil && hashLater && n <= laterMax:
			data := (*bp)[:n]
			d, yaraErr, _ := digestBytes(data, hostPath, hashSet{}, sets)
			lp := getLater(n)
			*lp = append((*lp)[:0], data...)
			return d, lp, yaraErr, nil
		case err == nil:
			d, yaraErr, err := digestBytes((*bp)[:n], hostPath, want, sets)
			return d, nil, yaraErr, err
		case !errors.Is(err, errGrew):
			return nil, nil, nil, err
		}
		// The file grew past the in-memory threshold: stream it instead.
		if _, err := syscall.Seek(f.fd, 0, io.SeekStart); err != nil {
			return nil, nil, nil, fmt.Errorf("seek %s: %w", f.name, err)
		}
	}

	// Stream larger files through the hashes while libyara scans the
	// descriptor (it maps the file) beside them. The head read first
	// gives the file type the rules' variables need.
	head := make([]byte, sniffLen)
	n, err := syscall.Pread(f.fd, head, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read %s: %w", f.name, err)
	}
	d = &digest{fileType: fileType(head[:n])}
	scanned := goScan(d, sets, hostPath, func(r *yarascan.Rules,
		vars map[string]string) ([]yarascan.Match, error) {
		return r.ScanFD(uintptr(f.fd), f.name, vars, scanTimeout)
	})
	h := getHasher(want)
	defer putHasher(want, h)
	_, err = stream(ctx, env, f, h.w, maxSize)
	yaraErr = <-scanned // before f can be closed
	if err != nil {
		return nil, nil, nil, err
	}
	h.fill(d)
	return d, nil, yaraErr, nil
}

// laterMax is the largest file whose hashes digestFile leaves for later:
// bigger ones are hashed at once. With the queue's bounds (filesRun.run:
// per worker 16 pending, 32 queued, 16 being hashed) the bytes held for
// hashing stay under laterMax times 64 per worker (2 MiB for one worker),
// and most files use the small class.
const laterMax = 32 << 10

// laterSmall is the buffer size of the small class.
const laterSmall = 8 << 10

// laterPools hold the buffers of files queued for hashing, by size class,
// so that the queue neither allocates a copy of every small file nor
// holds a large buffer for each.
var laterPools = [2]sync.Pool{
	{New: func() any { b := make([]byte, 0, laterSmall); return &b }},
	{New: func() any { b := make([]byte, 0, laterMax); return &b }},
}

// getLater returns an empty pooled buffer with room for n bytes (n at
// most laterMax).
func getLater(n int) *[]byte {
	if n <= laterSmall {
		return laterPools[0].Get().(*[]byte)
	}
	return laterPools[1].Get().(*[]byte)
}

// putLater gives a buffer from getLater back to its class.
func putLater(b *[]byte) {
	if cap(*b) <= laterSmall {
		laterPools[0].Put(b)
		return
	}
	laterPools[1].Put(b)
}

// hashInto computes the wanted hashes of data into d.
func hashInto(d *digest, data []byte, want hashSet) {
	h := getHasher(want)
	_, _ = h.w.Write(data)
	h.fill(d)
	putHasher(want, h)
}

// digestBytes hashes, types and scans a file held in memory, one after
// the other. (Hashing each file on a goroutine of its own while libyara
// scans was measured slower for small files: the hand-off and wake-up
// cost more than the overlap saves. The files collector overlaps them
// across files instead, through a queue; see filesRun.hashq.)
func digestBytes(data []byte, hostPath string, want hashSet,
	sets []ruleSet) (*digest, error, error) {
	d := &digest{fileType: fileType(data[:min(len(data), sniffLen)])}
	if want.any() {
		hashInto(d, data, want)
	}
	yaraErr := scanAll(d, sets, hostPath, func(r *yarascan.Rules,
		vars map[string]string) ([]yarascan.Match, error) {
		return r.ScanBytes(data, vars, scanTimeout)
	})
	return d, yaraErr, nil
}

// goScan runs scanAll on its own goroutine and delivers its error. The
// scan writes only d.yara, so the caller may fill the hashes meanwhile.
func goScan(d *digest, sets []ruleSet, hostPath string,
	scan func(*yarascan.Rules, map[string]string) ([]yarascan.Match, error)) <-chan error {
	out := make(chan error, 1)
	if len(sets) == 0 {
		out <- nil
		return out
	}
	go func() { out <- scanAll(d, sets, hostPath, scan) }()
	return out
}

// readWhole reads a small file into buf after charging the budget. buf
// has room for one byte more than wholeReadMax, so growth past the
// threshold is seen and the file re-read by the caller as streamed. A
// short read that reaches the size the file had when opened ends the read
// without a further call to see end of file: what was read is the whole
// file as it stood, which is what the digest describes.
func readWhole(ctx context.Context, env *collectors.Env, f *rawFile,
	buf []byte, size int64) (int, error) {
	if err := env.WaitRead(ctx, int(size)); err != nil {
		return 0, err
	}
	total := 0
	for total < len(buf) {
		want := len(buf) - total
		n, err := f.Read(buf[total:])
		total += n
		switch {
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return 0, err
		case n < want && int64(total) == size:
			return total, nil
		}
	}
	return 0, errGrew
}

// stream copies f into w in chunks, honouring the budget and ctx, and
// returns the first sniffLen bytes.
func stream(ctx context.Context, env *collectors.Env, f io.Reader, w io.Writer,
	maxSize int64) ([]byte, error) {
	buf := make([]byte, chunkSize)
	var head []byte
	var total int64
	for {
		if err := env.WaitRead(ctx, chunkSize); err != nil {
			return nil, err
		}
		n, err := f.Read(buf)
		if n > 0 {
			if head == nil {
				head = append([]byte(nil), buf[:min(n, sniffLen)]...)
			}
			total += int64(n)
			if total > maxSize {
				return nil, errGrew
			}
			_, _ = w.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return head, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
}

// scanAll runs scan with every rule set and stores the matching rule names
// under each set's hash.
func scanAll(d *digest, sets []ruleSet, hostPath string,
	scan func(*yarascan.Rules, map[string]string) ([]yarascan.Match, error)) error {
	if len(sets) == 0 {
		return nil
	}
	vars := yaraVars(hostPath, d.fileType)
	d.yara = make(map[string][]string, len(sets))
	var firstErr error
	for _, s := range sets {
		ms, err := scan(s.rules, vars)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		d.yara[s.hash] = yarascan.Names(ms)
	}
	return firstErr
}
