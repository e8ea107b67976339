package logs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// EVTX layout (MS-EVEN6): a 4 KiB file header, then 64 KiB chunks, each
// with a 512-byte header followed by event records whose bodies are
// Binary XML with templates and string tables local to the chunk.
//
// No Go EVTX library is served by the module proxy this project may use
// (www.velocidex.com/golang/evtx and github.com/0xrawsec/golang-evtx were
// both refused), so this is a small reader written from the format
// description. It reads one chunk at a time, bounds every offset against
// the chunk, and keeps only what the Windows mapping needs: the System
// provider, event ID, time, channel and computer, and EventData values.
const (
	evtxHeaderSize = 4096
	evtxChunkSize  = 65536
	evtxChunkHead  = 512
	evtxRecordHead = 24
	evtxMaxDepth   = 64 // nesting of elements and templates
)

var (
	evtxChunkMagic  = []byte("ElfChnk\x00")
	evtxRecordMagic = []byte{0x2a, 0x2a, 0, 0}
	errBinXML       = errors.New("malformed binary xml")
)

// evtx streams a Windows EVTX file chunk by chunk.
func (in *ingest) evtx(r *bufio.Reader) error {
	head := make([]byte, evtxHeaderSize)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.HasPrefix(head, evtxMagic) {
		in.env.Stats.Skip("bad evtx", in.src.Path+": short or unknown header")
		return nil
	}
	chunk := make([]byte, evtxChunkSize)
	for n := 0; ; n++ {
		if _, err := io.ReadFull(r, chunk); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				in.env.Stats.Skip("bad evtx", fmt.Sprintf("%s: chunk %d truncated", in.src.Path, n))
				return nil
			}
			return eofNil(err)
		}
		if !bytes.HasPrefix(chunk, evtxChunkMagic) {
			continue // an unused chunk at the end of a preallocated file
		}
		if err := in.evtxChunk(chunk, n); err != nil {
			return err
		}
	}
}

// evtxChunk maps every record of one chunk.
func (in *ingest) evtxChunk(chunk []byte, n int) error {
	free := int(binary.LittleEndian.Uint32(chunk[48:]))
	if free > len(chunk) || free < evtxChunkHead {
		free = len(chunk)
	}
	for off := evtxChunkHead; off+evtxRecordHead <= free; {
		if !bytes.Equal(chunk[off:off+4], evtxRecordMagic) {
			break // the rest of the chunk is slack
		}
		size := int(binary.LittleEndian.Uint32(chunk[off+4:]))
		id := binary.LittleEndian.Uint64(chunk[off+8:])
		where := fmt.Sprintf("%s:chunk %d:record %d", in.src.Path, n, id)
		if size < evtxRecordHead+4 || off+size > free {
			in.env.Stats.Skip("bad evtx record", where)
			break
		}
		p := &binxml{chunk: chunk}
		root, err := p.fragment(off+evtxRecordHead, off+size-4, nil, 0)
		if err != nil {
			in.env.Stats.Skip("bad evtx record", where+": "+err.Error())
		} else if ev, ok := evtxEvent(root, filetime(chunk[off+16:])); ok {
			if err := in.emit(ev.record(), where); err != nil {
				return emitErr(err)
			}
		} else {
			in.env.Stats.Skip("bad evtx record", where+": no event id")
		}
		off += size
	}
	return nil
}

// xnode is an element of decoded Binary XML.
type xnode struct {
	name  string
	attrs map[string]string
	text  strings.Builder
	kids  []*xnode
}

// child returns the first child element called name.
func (x *xnode) child(name string) *xnode {
	if x == nil {
		return nil
	}
	for _, k := range x.kids {
		if k.name == name {
			return k
		}
	}
	return nil
}

// evtxEvent pulls the mapped parts out of a decoded <Event>.
func evtxEvent(root *xnode, written time.Time) (winEvent, bool) {
	ev := root.child("Event")
	if ev == nil {
		ev = root
	}
	sys := ev.child("System")
	idNode := sys.child("EventID")
	if idNode == nil {
		return winEvent{}, false
	}
	id, ok := num(strings.TrimSpace(idNode.text.String()))
	if !ok {
		return winEvent{}, false
	}
	text := func(name string) string {
		if n := sys.child(name); n != nil {
			return strings.TrimSpace(n.text.String())
		}
		return ""
	}
	var provider string
	if p := sys.child("Provider"); p != nil {
		provider = p.attrs["Name"]
	}
	t := written
	if tc := sys.child("TimeCreated"); tc != nil {
		if st, ok := parseStamp(tc.attrs["SystemTime"], time.UTC); ok {
			t = st
		}
	}
	data := map[string]string{}
	for _, section := range []string{"EventData", "UserData"} {
		for _, d := range ev.child(section).kidsOrNil() {
			name := d.attrs["Name"]
			if name == "" {
				name = d.name
			}
			data[name] = strings.TrimSpace(d.text.String())
		}
	}
	return newWinEvent(id, provider, text("Channel"), text("Computer"), t, data), true
}

func (x *xnode) kidsOrNil() []*xnode {
	if x == nil {
		return nil
	}
	return x.kids
}

// evtxMaxSteps bounds the tokens decoded for one record. Templates may
// refer to themselves, so without a budget a crafted chunk could expand
// exponentially; real records take a few hundred steps.
const evtxMaxSteps = 20000

// binxml decodes Binary XML inside one chunk.
type binxml struct {
	chunk []byte
	steps int // tokens decoded so far for this record
}

// cursor reads little-endian values within [pos, end) of the chunk.
type cursor struct {
	b        []byte
	pos, end int
	err      error
}

func (c *cursor) need(n int) bool {
	if c.err != nil {
		return false
	}
	if n < 0 || c.pos+n > c.end || c.pos+n > len(c.b) {
		c.err = errBinXML
		return false
	}
	return true
}

func (c *cursor) u8() byte {
	if !c.need(1) {
		return 0
	}
	c.pos++
	return c.b[c.pos-1]
}

func (c *cursor) u16() uint16 {
	if !c.need(2) {
		return 0
	}
	c.pos += 2
	return binary.LittleEndian.Uint16(c.b[c.pos-2:])
}

func (c *cursor) u32() uint32 {
	if !c.need(4) {
		return 0
	}
	c.pos += 4
	return binary.LittleEndian.Uint32(c.b[c.pos-4:])
}

func (c *cursor) bytes(n int) []byte {
	if !c.need(n) {
		return nil
	}
	c.pos += n
	return c.b[c.pos-n : c.pos]
}

// Binary XML tokens; bit 0x40 on some means "more follows" or "has
// attributes".
const (
	tokEOF          = 0x00
	tokOpenStart    = 0x01
	tokCloseStart   = 0x02
	tokCloseEmpty   = 0x03
	tokEndElement   = 0x04
	tokValue        = 0x05
	tokAttribute    = 0x06
	tokCDATA        = 0x07
	tokCharRef      = 0x08
	tokEntityRef    = 0x09
	tokPITarget     = 0x0a
	tokPIData       = 0x0b
	tokTemplate     = 0x0c
	tokNormalSubst  = 0x0d
	tokOptionalSubs = 0x0e
	tokFragment     = 0x0f
)

// fragment decodes tokens in [start, end) into a synthetic root; values
// are the substitutions of the enclosing template instance.
func (p *binxml) fragment(start, end int, values []evtxValue, depth int) (*xnode, error) {
	if depth > evtxMaxDepth {
		return nil, errBinXML
	}
	c := &cursor{b: p.chunk, pos: start, end: min(end, len(p.chunk))}
	root := &xnode{attrs: map[string]string{}}
	stack := []*xnode{root}
	var attr string // the attribute being filled, "" for element text
	top := func() *xnode { return stack[len(stack)-1] }
	put := func(s string) {
		n := top()
		if attr != "" {
			if len(n.attrs[attr]) < MaxLine {
				n.attrs[attr] += s
			}
			return
		}
		if n.text.Len() < MaxLine {
			n.text.WriteString(s)
		}
	}

	for c.err == nil && c.pos < c.end {
		tok := c.u8()
		if p.steps++; p.steps > evtxMaxSteps {
			return nil, errBinXML
		}
		switch tok & 0xbf {
		case tokEOF:
			return root, c.err
		case tokFragment:
			c.bytes(3)
		case tokOpenStart:
			c.u16() // dependency id
			c.u32() // data size
			name := p.name(c)
			if tok&0x40 != 0 {
				c.u32() // attribute list size
			}
			if len(stack) > evtxMaxDepth {
				return nil, errBinXML
			}
			n := &xnode{name: name, attrs: map[string]string{}}
			top().kids = append(top().kids, n)
			stack = append(stack, n)
			attr = ""
		case tokCloseStart:
			attr = ""
		case tokCloseEmpty, tokEndElement:
			attr = ""
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case tokAttribute:
			attr = p.name(c)
			if attr == "" {
				attr = "?"
			}
			top().attrs[attr] = ""
		case tokValue:
			typ := c.u8()
			if typ != 0x01 {
				return nil, errBinXML
			}
			put(utf16String(c.bytes(2 * int(c.u16()))))
		case tokCDATA:
			put(utf16String(c.bytes(2 * int(c.u16()))))
		case tokCharRef:
			put(string(rune(c.u16())))
		case tokEntityRef:
			put(entity(p.name(c)))
		case tokPITarget:
			p.name(c)
		case tokPIData:
			c.bytes(2 * int(c.u16()))
		case tokNormalSubst, tokOptionalSubs:
			idx := int(c.u16())
			c.u8() // declared type; the instance's descriptor is what counts
			if idx < len(values) {
				if err := p.substitute(values[idx], top(), attr, put, depth); err != nil {
					return nil, err
				}
			}
		case tokTemplate:
			if err := p.template(c, top(), depth); err != nil {
				return nil, err
			}
		default:
			return nil, errBinXML
		}
	}
	return root, c.err
}

// name reads a name reference: a chunk offset, with the name stored inline
// when the offset points just past the reference.
func (p *binxml) name(c *cursor) string {
	off := int(c.u32())
	if c.err != nil {
		return ""
	}
	inline := off == c.pos
	nc := &cursor{b: p.chunk, pos: off, end: len(p.chunk)}
	nc.u32() // next in hash chain
	nc.u16() // hash
	n := int(nc.u16())
	s := utf16String(nc.bytes(2 * n))
	nc.u16() // terminator
	if nc.err != nil {
		c.err = errBinXML
		return ""
	}
	if inline {
		c.pos = nc.pos
		if c.pos > c.end {
			c.err = errBinXML
		}
	}
	return s
}

// evtxValue is one substitution value of a template instance.
type evtxValue struct {
	typ  byte
	data []byte
	pos  int // chunk offset of data, for nested Binary XML
}

// template reads a template instance: its definition (inline the first
// time it appears in a chunk, by offset after that) and its values, and
// decodes the definition with those values into parent.
func (p *binxml) template(c *cursor, parent *xnode, depth int) error {
	c.u8()  // unknown
	c.u32() // template id
	defOff := int(c.u32())
	if c.err != nil {
		return c.err
	}
	dc := &cursor{b: p.chunk, pos: defOff, end: len(p.chunk)}
	dc.u32()     // next template offset
	dc.bytes(16) // GUID
	size := int(dc.u32())
	bodyStart := dc.pos
	bodyEnd := bodyStart + size
	if dc.err != nil || size < 0 || bodyEnd > len(p.chunk) {
		return errBinXML
	}
	if defOff == c.pos {
		c.pos = bodyEnd // the definition was inline; values follow it
	}

	// Value descriptors, then the values back to back.
	count := int(c.u32())
	if c.err != nil || count > 4096 {
		return errBinXML
	}
	descs := c.bytes(4 * count)
	if c.err != nil {
		return c.err
	}
	values := make([]evtxValue, count)
	for i := range count {
		vsize := int(binary.LittleEndian.Uint16(descs[4*i:]))
		pos := c.pos // read before c.bytes moves it
		values[i] = evtxValue{typ: descs[4*i+2], pos: pos, data: c.bytes(vsize)}
	}
	if c.err != nil {
		return c.err
	}
	sub, err := p.fragment(bodyStart, bodyEnd, values, depth+1)
	if err != nil {
		return err
	}
	parent.kids = append(parent.kids, sub.kids...)
	return nil
}

// substitute writes one value: nested Binary XML becomes child elements,
// anything else text.
func (p *binxml) substitute(v evtxValue, parent *xnode, attr string, put func(string),
	depth int) error {
	if v.typ == 0x21 { // BinXml
		if len(v.data) == 0 {
			return nil
		}
		sub, err := p.fragment(v.pos, v.pos+len(v.data), nil, depth+1)
		if err != nil {
			return err
		}
		if attr == "" {
			parent.kids = append(parent.kids, sub.kids...)
		}
		return nil
	}
	put(evtxText(v.typ, v.data))
	return nil
}

// evtxText renders a typed value as Windows event XML would show it.
func evtxText(typ byte, b []byte) string {
	le := binary.LittleEndian
	if typ&0x80 != 0 { // arrays: strings are NUL-separated, others skipped
		if typ&0x7f == 0x01 {
			return strings.ReplaceAll(strings.TrimRight(utf16String(b), "\x00"), "\x00", ", ")
		}
		return fmt.Sprintf("%x", b)
	}
	switch {
	case typ == 0x00:
		return ""
	case typ == 0x01:
		return strings.TrimRight(utf16String(b), "\x00")
	case typ == 0x02:
		return strings.ToValidUTF8(strings.TrimRight(string(b), "\x00"), "\uFFFD")
	case typ == 0x03 && len(b) >= 1:
		return strconv.Itoa(int(int8(b[0])))
	case typ == 0x04 && len(b) >= 1:
		return strconv.Itoa(int(b[0]))
	case typ == 0x05 && len(b) >= 2:
		return strconv.Itoa(int(int16(le.Uint16(b))))
	case typ == 0x06 && len(b) >= 2:
		return strconv.Itoa(int(le.Uint16(b)))
	case typ == 0x07 && len(b) >= 4:
		return strconv.Itoa(int(int32(le.Uint32(b))))
	case typ == 0x08 && len(b) >= 4:
		return strconv.FormatUint(uint64(le.Uint32(b)), 10)
	case typ == 0x09 && len(b) >= 8:
		return strconv.FormatInt(int64(le.Uint64(b)), 10)
	case typ == 0x0a && len(b) >= 8:
		return strconv.FormatUint(le.Uint64(b), 10)
	case typ == 0x0d && len(b) >= 4:
		return strconv.FormatBool(le.Uint32(b) != 0)
	case typ == 0x0f && len(b) >= 16:
		return fmt.Sprintf("{%08X-%04X-%04X-%X-%X}", le.Uint32(b), le.Uint16(b[4:]),
			le.Uint16(b[6:]), b[8:10], b[10:16])
	case typ == 0x10 && len(b) == 4, typ == 0x14 && len(b) >= 4:
		return fmt.Sprintf("0x%x", le.Uint32(b))
	case typ == 0x10 && len(b) >= 8, typ == 0x15 && len(b) >= 8:
		return fmt.Sprintf("0x%x", le.Uint64(b))
	case typ == 0x11 && len(b) >= 8:
		return filetime(b).Format(time.RFC3339Nano)
	case typ == 0x12 && len(b) >= 16:
		return time.Date(int(le.Uint16(b)), time.Month(le.Uint16(b[2:])), int(le.Uint16(b[6:])),
			int(le.Uint16(b[8:])), int(le.Uint16(b[10:])), int(le.Uint16(b[12:])),
			int(le.Uint16(b[14:]))*int(time.Millisecond), time.UTC).Format(time.RFC3339Nano)
	case typ == 0x13:
		return sid(b)
	}
	return fmt.Sprintf("%x", b)
}

// filetime converts a Windows FILETIME (100 ns since 1601) to UTC.
func filetime(b []byte) time.Time {
	if len(b) < 8 {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns
	ft := binary.LittleEndian.Uint64(b)
	if ft < epochDiff || ft > epochDiff+(1<<62)/100 {
		return time.Time{}
	}
	return time.Unix(0, int64(ft-epochDiff)*100).UTC()
}

// sid formats a binary security identifier as S-1-5-21-....
func sid(b []byte) string {
	if len(b) < 8 {
		return fmt.Sprintf("%x", b)
	}
	n := int(b[1])
	if len(b) < 8+4*n {
		return fmt.Sprintf("%x", b)
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	s := fmt.Sprintf("S-%d-%d", b[0], auth)
	for i := range n {
		s += "-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10)
	}
	return s
}

// utf16String decodes UTF-16LE bytes.
func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// entity resolves the five XML entities.
func entity(name string) string {
	switch name {
	case "lt":
		return "<"
	case "gt":
		return ">"
	case "amp":
		return "&"
	case "quot":
		return `"`
	case "apos":
		return "'"
	}
	return "&" + name + ";"
}
