package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/huntmesh/huntmesh/tasks"
)

func newKeygenCmd() *cobra.Command {
	var out, name string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make an analyst ed25519 key pair",
		Long: `Write an analyst key pair: OUT.key (private, mode 0600) signs hunts; OUT.pub holds
the public key. Grant it roles on each node by adding a line to the node's trust file:

  hunt,query huntmesh-ed25519 BASE64KEY NAME

Roles: hunt, query, intel, admin (admin allows everything).`,
		Example: "  huntmesh keygen --out ~/.huntmesh/alice --name alice@soc",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force {
				if _, err := os.Stat(out + ".key"); err == nil {
					return fmt.Errorf("%s.key exists; pass --force to replace it", out)
				}
			}
			pub, priv, err := tasks.GenerateKey()
			if err != nil {
				return err
			}
			pemBytes, err := tasks.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out+".key", pemBytes, 0o600); err != nil {
				return fmt.Errorf("write private key: %w", err)
			}
			line := tasks.FormatPublicKey(pub, name)
			if err := os.WriteFile(out+".pub", []byte(line+"\n"), 0o644); err != nil {
				return fmt.Errorf("write public key: %w", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s.key and %s.pub (key ID %s)\n", out, out, tasks.KeyID(pub))
			fmt.Fprintf(w, "trust line for nodes:\nhunt,query %s\n", line)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "analyst", "path prefix for OUT.key and OUT.pub")
	cmd.Flags().StringVar(&name, "name", "", "who the key belongs to, shown in node logs")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key")
	return cmd
}
