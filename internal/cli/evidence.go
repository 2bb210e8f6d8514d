package cli

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/evidence"
)

func (e *env) evidenceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "Export one case's evidence bundle, and verify a bundle offline"}
	cmd.AddCommand(e.evidenceExportCmd(), e.evidenceVerifyCmd())
	return cmd
}

func (e *env) evidenceExportCmd() *cobra.Command {
	var reqID, approvalID, user, since, until, out string
	cmd := &cobra.Command{
		Use:   "export (--request-id ID | --approval ID | --user NAME --since T [--until T]) -o FILE",
		Short: "Write one case's evidence bundle: its records, each proven in the signed audit chain (needs the read-audit grant)",
		Long: `Write an evidence bundle: one file with every audit record of a case (one
request id, one approval with the calls it held and let through, or one user's
records from --since until --until), each as the exact bytes of the audit log
with its Merkle inclusion proof to a signed checkpoint, the tool and policy
versions those records name, the Ostiary version and the key fingerprint, all
signed with the audit key. Records of other users are not in it: the proofs
hold only hashes. The export is itself recorded, with the bundle's SHA-256.

Check a bundle anywhere, without the server or its data directory:
  ostiary evidence verify case.bundle --public-key audit-signing.pub`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("-o FILE is required")
			}
			q := url.Values{}
			for k, v := range map[string]string{"request_id": reqID, "approval": approvalID, "user": user} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if len(q) != 1 {
				return usageError("give exactly one of --request-id, --approval, or --user with --since and --until")
			}
			if user == "" && (since != "" || until != "") {
				return usageError("--since and --until go with --user")
			}
			if user != "" {
				if since == "" {
					return usageError("--user needs --since (and --until, default now)")
				}
				q.Set("until", e.now().UTC().Format(time.RFC3339Nano))
				for name, v := range map[string]string{"since": since, "until": until} {
					if v == "" {
						continue
					}
					t, err := parseWhen(v, e.now())
					if err != nil {
						return usageError("--%s %v", name, err)
					}
					q.Set(name, t.UTC().Format(time.RFC3339Nano))
				}
			}
			c, err := e.newClient()
			if err != nil {
				return err
			}
			var raw []byte
			if err := c.do(cmd.Context(), "GET", "/evidence/bundle", q, nil, nil, &raw); err != nil {
				return err
			}
			var b evidence.Bundle
			if err := json.Unmarshal(raw, &b); err != nil || b.Format != evidence.BundleFormat {
				return fmt.Errorf("unexpected answer from the server: not an evidence bundle")
			}
			if err := writeNew(out, raw); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "evidence bundle written to %s: %d records, key %s, sha256 %x\n", out, len(b.Records), b.KeyID, sha256.Sum256(raw))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&reqID, "request-id", "", "the records of one request (correlation id)")
	f.StringVar(&approvalID, "approval", "", "one approval: its records and those of the calls it held and let through")
	f.StringVar(&user, "user", "", "one user's records (with --since and --until)")
	f.StringVar(&since, "since", "", "from this long ago (12h, 7d) or this time (RFC 3339)")
	f.StringVar(&until, "until", "", "until this long ago or this time (excluded; default now)")
	f.StringVarP(&out, "output", "o", "", "write the bundle to `FILE` (created; an existing file is refused)")
	return cmd
}

// writeNew writes b to a new file, durably; it never replaces a file.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageError("%s exists; choose another file", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func (e *env) evidenceVerifyCmd() *cobra.Command {
	var pub string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE --public-key KEY",
		Short: "Verify an evidence bundle offline; exit 3 if it was altered, forged or signed by another key",
		Long: `Verify an evidence bundle with nothing but the trusted audit public key (your
own copy of keys/audit-signing.pub): the file is exactly its canonical form, its
signature and its checkpoint's are the key's, every record is in canonical form
and proven in the Merkle tree the checkpoint signs, every record belongs to the
case, and the versions listed are those the records name.

Exit status: 0 the bundle is genuine; 3 it is not (a byte changed, a record
added or removed, another key); 2 bad command line; 1 a file could not be read.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if pub == "" {
				return usageError("--public-key KEY is required: the bundle is checked against a key you trust, never one it names")
			}
			key, err := app.ReadPublicKey(pub)
			if err != nil {
				return err
			}
			// Read at most one byte more than a bundle can be: a size
			// from stat says nothing of a device or a pipe.
			f, err := os.Open(argv[0])
			if err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(f, evidence.MaxBundleBytes+2))
			f.Close()
			if err != nil {
				return err
			}
			if len(b) > evidence.MaxBundleBytes+1 {
				return &exitError{code: ExitTampered, err: fmt.Errorf("%s is larger than any bundle (%d MiB)", argv[0], evidence.MaxBundleBytes>>20)}
			}
			sum, err := evidence.VerifyBundle(b, key)
			if err != nil {
				return &exitError{code: ExitTampered, err: err}
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(map[string]any{"ok": true, "records": sum.Records, "checkpoint": sum.Checkpoint,
					"key_id": sum.KeyID, "case": sum.Case, "exported_at": sum.ExportedAt, "exported_by": sum.ExportedBy})
			}
			fmt.Fprintln(e.stdout, sum)
			return nil
		},
	}
	cmd.Flags().StringVar(&pub, "public-key", "", "the trusted audit public `KEY` (PEM), e.g. your copy of keys/audit-signing.pub")
	jsonFlag(cmd, &asJSON)
	return cmd
}
