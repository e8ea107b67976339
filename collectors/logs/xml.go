package logs

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// xmlEvent is one <Event> of Windows event XML, as Sysmon for Linux writes
// it to syslog and wevtutil exports it.
type xmlEvent struct {
	System struct {
		Provider struct {
			Name string `xml:"Name,attr"`
		} `xml:"Provider"`
		EventID     string `xml:"EventID"`
		TimeCreated struct {
			SystemTime string `xml:"SystemTime,attr"`
		} `xml:"TimeCreated"`
		Channel  string `xml:"Channel"`
		Computer string `xml:"Computer"`
	} `xml:"System"`
	EventData struct {
		Data []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"Data"`
	} `xml:"EventData"`
}

// xmlEvents streams every <Event> element of an XML file, at any depth
// (a bare event, an <Events> list, or events one a line), through the
// Windows event mapping. An element is decoded only when reached, and each
// is bounded by maxObject.
func (in *ingest) xmlEvents(r *bufio.Reader) error {
	cr := &capReader{r: r, left: maxObject}
	dec := xml.NewDecoder(cr)
	dec.Strict = false
	n := 0
	for {
		cr.left = maxObject
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return in.badXML(dec, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "Event" {
			continue
		}
		var x xmlEvent
		if err := dec.DecodeElement(&x, &se); err != nil {
			return in.badXML(dec, err)
		}
		n++
		where := fmt.Sprintf("%s:#%d", in.src.Path, n)
		id, ok := num(strings.TrimSpace(x.System.EventID))
		if !ok {
			in.env.Stats.Skip("no event id", where)
			continue
		}
		t, _ := parseStamp(x.System.TimeCreated.SystemTime, in.p.loc)
		data := make(map[string]string, len(x.EventData.Data))
		for _, d := range x.EventData.Data {
			data[d.Name] = strings.TrimSpace(d.Value)
		}
		ev := newWinEvent(id, x.System.Provider.Name, x.System.Channel,
			x.System.Computer, t, data)
		if err := in.emit(ev.record(), where); err != nil {
			return emitErr(err)
		}
	}
}

// badXML counts a broken document; what follows cannot be found again.
func (in *ingest) badXML(dec *xml.Decoder, err error) error {
	if cerr := in.ctx.Err(); cerr != nil {
		return cerr
	}
	in.env.Stats.Skip("bad xml", fmt.Sprintf("%s:@%d: %v", in.src.Path,
		dec.InputOffset(), err))
	return nil
}
