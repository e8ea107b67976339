package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"
)

// Wire format of a request/response exchange on any protocol:
//
//	request:  uvarint length, body
//	response: status byte, uvarint length, body
//
// A status of statusOK carries the handler's response; statusError carries
// the handler's error text, at most maxErrorText bytes.
const (
	statusOK    = 0
	statusError = 1

	maxErrorText = 1 << 10
)

// streamHandler serves one protocol.
type streamHandler func(ctx context.Context, from string, req []byte) ([]byte, error)

// RemoteError is an error returned by the handler on the peer that served a
// Call.
type RemoteError struct {
	Peer string // who answered
	Msg  string // the handler's error text, truncated
}

// Error implements error.
func (e *RemoteError) Error() string { return "remote " + e.Peer + ": " + e.Msg }

// Handle serves protocol proto: each request, at most MaxStreamSize bytes, is
// passed to fn with the caller's authenticated peer ID, and fn's response
// (also capped) or error goes back. fn runs within StreamTimeout and its
// context ends when the mesh closes. A second Handle for proto replaces the
// first.
func (m *Mesh) Handle(proto string, fn func(ctx context.Context, from string,
	req []byte) ([]byte, error)) {
	m.mu.Lock()
	m.handlers[proto] = fn
	m.mu.Unlock()
	m.host.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		m.serve(s, proto, fn)
	})
}

// serve answers one incoming stream.
func (m *Mesh) serve(s network.Stream, proto string, fn streamHandler) {
	from := s.Conn().RemotePeer().String()
	start := time.Now()
	m.stats.add("call/in/" + proto)
	if err := s.SetDeadline(start.Add(m.cfg.StreamTimeout)); err != nil {
		s.Reset()
		return
	}
	r := bufio.NewReader(s)
	req, err := readFrame(r, m.cfg.MaxStreamSize)
	if err != nil {
		m.stats.add("call/in-bad/" + proto)
		m.log.Debug("bad request", "proto", proto, "peer", from, "err", err)
		s.Reset()
		return
	}

	// The handler's context ends with the stream deadline or the mesh.
	ctx, cancel := context.WithDeadline(m.ctx, start.Add(m.cfg.StreamTimeout))
	resp, herr := m.runHandler(ctx, fn, from, req)
	cancel()

	if err := writeResponse(s, resp, herr); err != nil {
		m.log.Debug("write response failed", "proto", proto, "peer", from, "err", err)
		s.Reset()
		return
	}
	s.Close()
	m.log.Debug("served call", "proto", proto, "peer", from,
		"dur", time.Since(start), "err", herr)
}

// runHandler calls fn, turning a panic into an error and refusing an
// oversize response.
func (m *Mesh) runHandler(ctx context.Context, fn streamHandler, from string,
	req []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, fmt.Errorf("handler panic: %v", r)
		}
	}()
	resp, err = fn(ctx, from, req)
	if err == nil && len(resp) > m.cfg.MaxStreamSize {
		return nil, fmt.Errorf("response of %d bytes over %d: %w",
			len(resp), m.cfg.MaxStreamSize, ErrTooLarge)
	}
	return resp, err
}

// Call sends req to peer to on protocol proto and returns the response. The
// exchange ends at ctx's deadline or after StreamTimeout, whichever is first.
// A request over MaxStreamSize fails with ErrTooLarge before sending; an
// error from the remote handler comes back as *RemoteError. A call to this
// node's own ID runs the local handler directly.
func (m *Mesh) Call(ctx context.Context, to, proto string, req []byte) ([]byte, error) {
	if len(req) > m.cfg.MaxStreamSize {
		return nil, fmt.Errorf("call %s: request of %d bytes over %d: %w",
			proto, len(req), m.cfg.MaxStreamSize, ErrTooLarge)
	}
	if m.isClosed() {
		return nil, ErrClosed
	}
	pid, err := peer.Decode(to)
	if err != nil {
		return nil, fmt.Errorf("call %s: peer %q: %w", proto, to, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	m.stats.add("call/out/" + proto)

	if pid == m.host.ID() {
		return m.callSelf(ctx, proto, req)
	}

	s, err := m.host.NewStream(ctx, pid, protocol.ID(proto))
	if err != nil {
		if errors.As(err, new(multistream.ErrNotSupported[protocol.ID])) {
			return nil, fmt.Errorf("call %s on %s: %w", proto, to, ErrNoHandler)
		}
		return nil, fmt.Errorf("call %s on %s: open stream: %w", proto, to, err)
	}

	// Reset the stream if ctx ends first; the deadline covers a silent peer.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		if err := s.SetDeadline(dl); err != nil {
			s.Reset()
			return nil, fmt.Errorf("call %s on %s: set deadline: %w", proto, to, err)
		}
	}

	resp, err := m.exchange(s, req)
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		m.stats.add("call/fail/" + proto)
		return nil, fmt.Errorf("call %s on %s: %w", proto, to, err)
	}
	s.Close()
	return resp, nil
}

// exchange writes the request, half-closes, and reads the response.
func (m *Mesh) exchange(s network.Stream, req []byte) ([]byte, error) {
	if err := writeFrame(s, req); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	r := bufio.NewReader(s)
	status, err := r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	switch status {
	case statusOK:
		resp, err := readFrame(r, m.cfg.MaxStreamSize)
		if err != nil {
			return nil, fmt.Errorf("read response: %w", err)
		}
		return resp, nil
	case statusError:
		text, err := readFrame(r, maxErrorText)
		if err != nil {
			return nil, fmt.Errorf("read error response: %w", err)
		}
		return nil, &RemoteError{Peer: s.Conn().RemotePeer().String(), Msg: string(text)}
	default:
		return nil, fmt.Errorf("read response: unknown status %d", status)
	}
}

// callSelf runs the local handler for proto as a remote peer would.
func (m *Mesh) callSelf(ctx context.Context, proto string, req []byte) ([]byte, error) {
	m.mu.Lock()
	fn, ok := m.handlers[proto]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("call %s on self: %w", proto, ErrNoHandler)
	}
	resp, err := m.runHandler(ctx, fn, m.ID(), req)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("call %s on self: %w", proto, err)
		}
		return nil, &RemoteError{Peer: m.ID(), Msg: truncate(err.Error(), maxErrorText)}
	}
	return resp, nil
}

// writeResponse writes a status byte and either the body or the error text.
func writeResponse(w io.Writer, resp []byte, herr error) error {
	if herr != nil {
		if _, err := w.Write([]byte{statusError}); err != nil {
			return err
		}
		return writeFrame(w, []byte(truncate(herr.Error(), maxErrorText)))
	}
	if _, err := w.Write([]byte{statusOK}); err != nil {
		return err
	}
	return writeFrame(w, resp)
}

// writeFrame writes a uvarint length and the body.
func writeFrame(w io.Writer, body []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// readFrame reads a uvarint length and a body of at most limit bytes; the
// length is checked before anything is allocated.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("read length: %w", err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("body of %d bytes over %d: %w", n, limit, ErrTooLarge)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return body, nil
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
