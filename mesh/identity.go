package mesh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// identityFile is the name of the node key under DataDir.
const identityFile = "identity.key"

// maxKeyFile bounds how much of an identity file we read; a marshalled
// ed25519 key is under 100 bytes.
const maxKeyFile = 4 << 10

// loadIdentity reads the node key from dir, creating it on first use. An
// empty dir yields a fresh key that is not saved.
func loadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		return newKey()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, identityFile)

	// Read an existing key, refusing anything but a plain file.
	raw, err := readBounded(path, maxKeyFile)
	switch {
	case err == nil:
		key, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("decode identity %s: %w", path, err)
		}
		if key.Type() != crypto.Ed25519 {
			return nil, fmt.Errorf("decode identity %s: key type %s is not ed25519",
				path, key.Type())
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read identity: %w", err)
	}

	// First start: make a key and write it so that no one else can read it.
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	raw, err = crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	if err := writeFileAtomic(path, raw, 0o600); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	return key, nil
}

// newKey makes a fresh ed25519 libp2p key.
func newKey() (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return key, nil
}

// PeerIDOf returns the libp2p peer ID string of a raw ed25519 public key, so
// that a node can tell which peer signed a result.
func PeerIDOf(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("peer id of key: want %d bytes, got %d",
			ed25519.PublicKeySize, len(pub))
	}
	key, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("peer id of key: %w", err)
	}
	id, err := peer.IDFromPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("peer id of key: %w", err)
	}
	return id.String(), nil
}

// PublicKeyOf returns the raw ed25519 public key embedded in a peer ID, the
// inverse of PeerIDOf.
func PublicKeyOf(id string) (ed25519.PublicKey, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("decode peer id: %w", err)
	}
	key, err := pid.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("extract key of %s: %w", id, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("extract key of %s: type %s is not ed25519", id, key.Type())
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, fmt.Errorf("extract key of %s: %w", id, err)
	}
	return ed25519.PublicKey(raw), nil
}

// readBounded reads a regular file of at most limit bytes. It does not follow
// a symlink at the last path element and refuses FIFOs and devices.
func readBounded(path string, limit int64) ([]byte, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes exceeds limit %d", path, info.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s: exceeds limit %d", path, limit)
	}
	return raw, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename

	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}
