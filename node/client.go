package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrNoNode is returned by Dial when no node serves the control socket.
var ErrNoNode = errors.New("no node is running on this data directory")

// Client talks to a local node over its control socket.
type Client struct {
	path string
}

// Dial checks that a node serves the control socket of dataDir.
func Dial(dataDir string) (*Client, error) {
	c := &Client{path: SocketPath(dataDir)}
	conn, err := net.DialTimeout("unix", c.path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %w", ErrNoNode, c.path, err)
	}
	conn.Close()
	return c, nil
}

// Call sends req and hands every response line to fn until the node says
// it is done. An error response becomes the returned error.
func (c *Client) Call(ctx context.Context, req Request, fn func(Response) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return fmt.Errorf("dial node: %w", err)
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()

	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("send request: %w", err)
	}

	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		if err := fn(resp); err != nil {
			return err
		}
		if resp.Done {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return errors.New("node closed the connection before answering")
}

// Info asks the node to describe itself.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info *Info
	err := c.Call(ctx, Request{Op: "info"}, func(r Response) error {
		info = r.Info
		return nil
	})
	if err == nil && info == nil {
		err = errors.New("node sent no info")
	}
	return info, err
}

// Peers lists the node's peers.
func (c *Client) Peers(ctx context.Context) ([]PeerView, error) {
	var peers []PeerView
	err := c.Call(ctx, Request{Op: "peers"}, func(r Response) error {
		peers = r.Peers
		return nil
	})
	return peers, err
}
