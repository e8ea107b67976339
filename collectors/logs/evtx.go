package logs

import (
	"bufio"
)

// evtx would read a binary Windows event log. Neither Go EVTX library
// (www.velocidex.com/golang/evtx, github.com/0xrawsec/golang-evtx) is
// served by the module proxy this project may use, so a .evtx file is
// counted once as skipped "evtx unsupported" and named in the samples;
// export it to XML (wevtutil qe /f:xml) or JSON and ingest that instead.
func (in *ingest) evtx(_ *bufio.Reader) error {
	in.env.Stats.Skip("evtx unsupported", in.src.Path)
	return nil
}
