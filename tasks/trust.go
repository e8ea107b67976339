package tasks

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strings"
)

// publicKeyTag starts the one-line text form of an analyst public key:
//
//	huntmesh-ed25519 BASE64KEY alice@soc
const publicKeyTag = "huntmesh-ed25519"

// pemType labels an analyst private key file.
const pemType = "PRIVATE KEY"

// GenerateKey makes a new analyst key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivateKey encodes priv as a PKCS #8 PEM block.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM file written by MarshalPrivateKey.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("parse private key: no %q PEM block", pemType)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T is not an ed25519 key", key)
	}
	return priv, nil
}

// FormatPublicKey returns the one-line text form of pub with a comment.
func FormatPublicKey(pub ed25519.PublicKey, comment string) string {
	line := publicKeyTag + " " + base64.StdEncoding.EncodeToString(pub)
	if comment != "" {
		line += " " + comment
	}
	return line
}

// ParsePublicKey reads the one-line text form; it returns the key and the
// comment.
func ParsePublicKey(line string) (ed25519.PublicKey, string, error) {
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != publicKeyTag {
		return nil, "", fmt.Errorf("parse public key: want %q followed by base64", publicKeyTag)
	}
	raw, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, "", fmt.Errorf("parse public key: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("parse public key: %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), strings.Join(fields[2:], " "), nil
}

// TrustEntry is one analyst key a node obeys.
type TrustEntry struct {
	Key   ed25519.PublicKey
	Roles []string
	Name  string
}

// Allows reports whether the entry may issue tasks of type typ.
func (e TrustEntry) Allows(typ string) bool {
	if slices.Contains(e.Roles, RoleAdmin) {
		return true
	}
	need := map[string]string{
		TypeHunt:   RoleHunt,
		TypeQuery:  RoleQuery,
		TypeIntel:  RoleIntel,
		TypeCancel: RoleHunt,
	}[typ]
	return need != "" && slices.Contains(e.Roles, need)
}

// Trust is a node's set of trusted analyst keys. The zero value trusts
// nobody.
type Trust struct {
	byID map[string]TrustEntry
}

// knownRoles are the roles a trust file may grant.
var knownRoles = []string{RoleHunt, RoleQuery, RoleIntel, RoleAdmin}

// ParseTrust reads a trust file. Each line grants roles to one key:
//
//	hunt,query huntmesh-ed25519 BASE64KEY alice@soc
//	admin      huntmesh-ed25519 BASE64KEY bob@ir
//
// Blank lines and lines starting with # are ignored. An error names the
// line.
func ParseTrust(r io.Reader) (*Trust, error) {
	t := &Trust{byID: map[string]TrustEntry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rolesField, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("trust file line %d: want ROLES KEY", n)
		}
		roles := strings.Split(rolesField, ",")
		for _, role := range roles {
			if !slices.Contains(knownRoles, role) {
				return nil, fmt.Errorf("trust file line %d: unknown role %q (want %s)",
					n, role, strings.Join(knownRoles, ", "))
			}
		}
		pub, name, err := ParsePublicKey(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("trust file line %d: %w", n, err)
		}
		t.byID[KeyID(pub)] = TrustEntry{Key: pub, Roles: roles, Name: name}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trust file: %w", err)
	}
	return t, nil
}

// Add grants roles to pub; it is meant for tests and tools that build a
// trust set in memory.
func (t *Trust) Add(pub ed25519.PublicKey, name string, roles ...string) {
	if t.byID == nil {
		t.byID = map[string]TrustEntry{}
	}
	t.byID[KeyID(pub)] = TrustEntry{Key: pub, Roles: roles, Name: name}
}

// Lookup returns the entry for pub.
func (t *Trust) Lookup(pub ed25519.PublicKey) (TrustEntry, bool) {
	if t == nil {
		return TrustEntry{}, false
	}
	e, ok := t.byID[KeyID(pub)]
	if ok && !e.Key.Equal(pub) {
		return TrustEntry{}, false
	}
	return e, ok
}

// Len is the number of trusted keys.
func (t *Trust) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byID)
}
