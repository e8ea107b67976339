// Command huntmesh runs a node of the peer-to-peer threat-hunting mesh and
// the analyst commands that talk to it.
package main

import (
	"os"

	"github.com/huntmesh/huntmesh/cli"
)

func main() {
	os.Exit(cli.Execute())
}
