package node

import (
	"fmt"
	"regexp"
)

// blobChunk is how many bytes of a blob travel in one control response.
const blobChunk = 256 << 10

var blobHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// chunkWriter turns a blob stream into control responses.
type chunkWriter struct {
	send func(Response) bool
	err  error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), blobChunk)
		if !w.send(Response{Chunk: append([]byte(nil), p[:k]...)}) {
			w.err = fmt.Errorf("client went away")
			return 0, w.err
		}
		p = p[k:]
	}
	return n, nil
}

// serveBlob streams a stored blob (a memory dump, a fetched file) to the
// control client, checked against its hash on the way out.
func (n *Node) serveBlob(req Request, send func(Response) bool) {
	if !blobHash.MatchString(req.Blob) {
		send(Response{Error: fmt.Sprintf("evidence: %q is not a lower-case SHA-256", req.Blob), Done: true})
		return
	}
	w := &chunkWriter{send: send}
	if err := n.store.GetBlob(req.Blob, w); err != nil {
		if w.err == nil {
			send(Response{Error: "evidence: " + err.Error(), Done: true})
		}
		return
	}
	send(Response{Done: true})
}
