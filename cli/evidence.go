package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/node"
)

func newEvidenceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Read evidence blobs (memory dumps, fetched files) from the local store",
	}
	var out string
	get := &cobra.Command{
		Use:   "get SHA256",
		Short: "Write a stored blob to a file or standard output",
		Long: `Write the blob with this SHA-256 (the blob_sha256 field of a memdump or file-fetch
record) to --out, or to standard output. The bytes are checked against the hash.`,
		Example: "  huntmesh evidence get 9f2b...e1 --out miner.dump",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := node.Dial(g.dataDir)
			if err != nil {
				return err
			}
			var w io.Writer = os.Stdout
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("create --out file: %w", err)
				}
				defer f.Close()
				w = f
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), 30*time.Minute)
			defer cancel()
			var total int64
			err = client.Call(ctx, node.Request{Op: "blob", Blob: args[0]}, func(r node.Response) error {
				k, err := w.Write(r.Chunk)
				total += int64(k)
				return err
			})
			if err != nil {
				if out != "" {
					os.Remove(out)
				}
				return err
			}
			if out != "" {
				fmt.Fprintf(os.Stderr, "wrote %d bytes to %s\n", total, out)
			}
			return nil
		},
	}
	get.Flags().StringVarP(&out, "out", "o", "", "file to write (must not exist); default standard output")
	cmd.AddCommand(get)
	return cmd
}
