package cli

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/vault"
)

func (e *env) secretsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Manage upstream credentials in the vault (values are never shown)"}
	cmd.AddCommand(e.secretsSetCmd("set"), e.secretsSetCmd("rotate"), e.secretsListCmd(), e.secretsRewrapCmd(),
		e.secretsCompromisedCmd(), e.secretsRekeyCmd())
	return cmd
}

// readValue reads a secret value from stdin, without a trailing newline.
func (e *env) readValue() (string, error) {
	b, err := io.ReadAll(io.LimitReader(e.stdin, vault.MaxValue+1))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", usageError("the secret value is read from standard input, which was empty")
	}
	return v, nil
}

func (e *env) secretsSetCmd(verb string) *cobra.Command {
	var upstreams []string
	var environment, every string
	var asJSON bool
	short := "Store a secret (its value read from standard input), usable by the named upstreams"
	if verb == "rotate" {
		short = "Store a new version of a secret (value from standard input); same upstreams unless --upstream is given"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME [--env ENV] [--upstream U]... [--rotate-every 90d]",
		Short: short,
		Long: short + `.
Refer to it in an upstream's --header or --env value as ${secret:NAME}; it is
resolved at the last moment on each request, every access is audited, and its
value is redacted from anything the upstream sends back.

A secret has a value (and versions) per environment: --env ENV (default
"default") sets the one that calls made with keys of ENV receive
('ostiary keys create --env ENV'). A key whose environment has no value
cannot reach the upstreams that need it.

--rotate-every PERIOD (N followed by d, w or h, e.g. 90d; none clears it)
sets how long this version may serve; the next versions keep it unless
given. 'secrets list' shows when each is due; a secret past due is alerted
(a secret-rotation-overdue audit record) when it falls due and daily until
rotated, and is listed by 'secrets list --overdue'.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if environment == "" {
				environment = authn.DefaultEnvironment
			}
			if !authn.ValidEnvironment(environment) {
				return usageError("--env: %q is not an environment name (1–32 lower-case letters, digits and '-', starting with a letter)", environment)
			}
			if every != "" {
				if _, err := vault.ParsePeriod(every); err != nil {
					return usageError("--rotate-every: %v", err)
				}
			}
			if verb == "set" && len(upstreams) == 0 {
				return usageError("--upstream is required: name where the secret may be injected")
			}
			if verb == "rotate" && len(upstreams) == 0 {
				var l adminapi.SecretList
				c, err := e.newClient()
				if err != nil {
					return err
				}
				if err := c.do(cmd.Context(), "GET", "/secrets", nil, nil, &l, nil); err != nil {
					return err
				}
				for _, s := range l.Secrets {
					if s.Name == a[0] && s.Environment == environment {
						upstreams = s.Upstreams
					}
				}
				if len(upstreams) == 0 {
					return fmt.Errorf("secret %q has no value in environment %q: use 'secrets set'", a[0], environment)
				}
			}
			value, err := e.readValue()
			if err != nil {
				return err
			}
			var s vault.Secret
			return e.call(cmd, "PUT", "/secrets/"+url.PathEscape(a[0]), nil, adminapi.SetSecret{Value: value, Upstreams: upstreams, Environment: environment, RotateEvery: every}, &s, asJSON, func() error {
				return e.printSecrets(s)
			})
		},
	}
	cmd.Flags().StringArrayVar(&upstreams, "upstream", nil, "an upstream the secret may be injected into (repeatable)")
	cmd.Flags().StringVar(&environment, "env", "", "the environment whose value this is (default \"default\")")
	cmd.Flags().StringVar(&every, "rotate-every", "", "rotation schedule of this version: `PERIOD` as 90d, 12w or 36h, or none (default: the previous version's)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) printSecrets(ss ...vault.Secret) error {
	now := e.now()
	t := newTable(e.stdout, "NAME", "ENV", "VERSION", "UPSTREAMS", "AGE", "ROTATE EVERY", "ROTATION DUE", "CREATED", "BY", "LAST ACCESS")
	for _, s := range ss {
		every := "-"
		if s.RotateEvery > 0 {
			every = s.RotateEvery.String()
		}
		t.row(s.Name, s.Environment, strconv.Itoa(s.Version), list(s.Upstreams), age(now.Sub(s.CreatedAt)), every, dueText(s, now),
			when(&s.CreatedAt), s.CreatedBy, when(&s.LastAccessed))
	}
	return t.flush()
}

// age writes d as days, or hours under two days.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0h"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// dueText says when s is due: never, its date, or how long overdue and why.
func dueText(s vault.Secret, now time.Time) string {
	if s.RotationDue.IsZero() {
		return "-"
	}
	if !s.Overdue {
		return s.RotationDue.UTC().Format(time.DateOnly) + " (in " + age(s.RotationDue.Sub(now)) + ")"
	}
	why := "OVERDUE " + age(now.Sub(s.RotationDue))
	if s.RotateNow != nil {
		why = "NOW: " + s.RotateNow.Cause + " (" + s.RotateNow.Reason + ")"
	}
	return why
}

func (e *env) secretsListCmd() *cobra.Command {
	var asJSON, overdue bool
	cmd := &cobra.Command{
		Use:   "list [--overdue]",
		Short: "List secrets: names, versions, age, rotation due, scopes and last access, never values",
		Long: `List every secret's current version in every environment: its age, its
rotation schedule and when it is due (OVERDUE once past; NOW for a version
marked rotate-now: compromised, or reachable by someone disabled or who lost
the grants that reach secret values), its upstreams and last access. Values
are never shown. --overdue lists only those past due.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.SecretList
			var q url.Values
			if overdue {
				q = url.Values{"overdue": {"true"}}
			}
			return e.call(cmd, "GET", "/secrets", q, nil, &l, asJSON, func() error { return e.printSecrets(l.Secrets...) })
		},
	}
	cmd.Flags().BoolVar(&overdue, "overdue", false, "only the secrets past their rotation date or marked rotate-now")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) secretsCompromisedCmd() *cobra.Command {
	var environment, reason string
	var kill, asJSON bool
	cmd := &cobra.Command{
		Use:   "compromised NAME --reason TEXT [--env ENV] [--kill]",
		Short: "Mark a secret's current value compromised: due for rotation now, optionally cut off",
		Long: `Mark the current value of secret NAME in ENV (default "default") compromised:
it is due for rotation at once, listed by 'secrets list --overdue' and alerted
daily until 'secrets rotate' sets a new version. Needs manage-secrets.

--kill also engages a kill switch on every upstream the secret is scoped to
(needs operate-killswitch:*), so nothing reaches them with the compromised
value; the switches are released when the new version is set. A kill switch
covers the upstream in every environment.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason is required")
			}
			var s vault.Secret
			return e.call(cmd, "POST", "/secrets/"+url.PathEscape(a[0])+"/compromised", nil, adminapi.Compromised{Environment: environment, Reason: reason, Kill: kill}, &s, asJSON, func() error {
				if len(s.KillSwitches) > 0 {
					fmt.Fprintf(e.stderr, "kill switches engaged until the new version is set: %s\n", strings.Join(s.KillSwitches, ", "))
				}
				return e.printSecrets(s)
			})
		},
	}
	cmd.Flags().StringVar(&environment, "env", "", "the environment of the compromised value (default \"default\")")
	cmd.Flags().StringVar(&reason, "reason", "", "why: what happened (required; on record)")
	cmd.Flags().BoolVar(&kill, "kill", false, "engage a kill switch on the secret's upstreams until a new version is set")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) secretsRekeyCmd() *cobra.Command {
	var wait, status, asJSON bool
	cmd := &cobra.Command{
		Use:   "rekey [--wait] [--status]",
		Short: "Rotate the vault's data key: every value re-encrypted under a new one, while serving",
		Long: `Rotate the vault's data key (admin). The server makes a new data key, seals
new values under it at once, re-encrypts every stored value (old versions
too) under it in batches while it keeps serving, and retires the old key
when none is left. Each step is audited (vault-rekey). A server stopped or
killed meanwhile resumes the rotation when it starts again; so does running
this command again. Audit search tokens do not change.

--wait waits until the rotation has finished; --status only reports.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st vault.RekeyStatus
			method := "POST"
			if status {
				method = "GET"
			}
			c, err := e.newClient()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), method, "/vault/rekey", nil, nil, &st, nil); err != nil {
				return err
			}
			for wait && (len(st.Retiring) > 0 && st.Running) {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
				if err := c.do(cmd.Context(), "GET", "/vault/rekey", nil, nil, &st, nil); err != nil {
					return err
				}
			}
			if asJSON {
				b, err := json.Marshal(st)
				if err != nil {
					return err
				}
				return printJSON(e.stdout, b)
			}
			switch {
			case len(st.Retiring) == 0:
				fmt.Fprintf(e.stdout, "every value is sealed under data key %d; no rotation under way\n", st.DataKey)
			case st.Running:
				fmt.Fprintf(e.stdout, "rotating to data key %d: %d value(s) left under data key(s) %v\n", st.DataKey, st.Remaining, st.Retiring)
			default:
				fmt.Fprintf(e.stdout, "rotation to data key %d stopped with %d value(s) left (%s): run 'secrets rekey' to resume\n", st.DataKey, st.Remaining, st.LastError)
			}
			if st.LastError != "" && len(st.Retiring) > 0 {
				return fmt.Errorf("the rotation stopped: %s", st.LastError)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the rotation has finished")
	cmd.Flags().BoolVar(&status, "status", false, "only report where a rotation stands")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) secretsRewrapCmd() *cobra.Command {
	var file string
	var retire, hsm, asJSON bool
	cmd := &cobra.Command{
		Use:   "rewrap (--new-master-key-file FILE | --hsm) [--retire-others]",
		Short: "Rotate the vault master key without downtime",
		Long: `Rotate the vault master key without downtime. The vault's data key is wrapped
under the key in FILE (64 hex characters; FILE is created with a fresh random
key, mode 0600, if it does not exist). Secret values are not re-encrypted.

  1. ostiary secrets rewrap --new-master-key-file NEW
       both the old and the new master key now open the vault
  2. point OSTIARY_MASTER_KEY_FILE (or --master-key-file) of every server at
     NEW and restart them when convenient
  3. ostiary secrets rewrap --new-master-key-file NEW --retire-others
       only NEW opens the vault; the old key can be destroyed

To move to an HSM, start the server with both the key file and the HSM
(--master-key-file and --master-key-pkcs11 …), run 'secrets rewrap --hsm',
restart it with the HSM flags alone, then 'secrets rewrap --hsm
--retire-others'. Back to a file: 'secrets rewrap --new-master-key-file NEW'
on the server started with the HSM, and so on as above.

Needs the admin grant; each step is audited (never the key).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hsm {
				if file != "" {
					return usageError("give --new-master-key-file or --hsm, not both")
				}
				var out adminapi.Rewrapped
				return e.call(cmd, "POST", "/vault/rewrap", nil, adminapi.Rewrap{HSM: true, RetireOthers: retire}, &out, asJSON, func() error {
					fmt.Fprintf(e.stdout, "vault data key wrapped under the server's HSM key; %d master key(s) open the vault\n", out.MasterKeys)
					return nil
				})
			}
			if file == "" {
				return usageError("--new-master-key-file (or --hsm) is required")
			}
			key, created, err := masterKeyFile(file)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(e.stderr, "wrote a new master key to %s\n", file)
			}
			var out adminapi.Rewrapped
			return e.call(cmd, "POST", "/vault/rewrap", nil, adminapi.Rewrap{NewMasterKey: key, RetireOthers: retire}, &out, asJSON, func() error {
				fmt.Fprintf(e.stdout, "vault data key wrapped under %s; %d master key(s) open the vault\n", file, out.MasterKeys)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&file, "new-master-key-file", "", "`FILE` holding the new master key (created if missing)")
	cmd.Flags().BoolVar(&retire, "retire-others", false, "delete every other wrapping: only the new key will open the vault")
	cmd.Flags().BoolVar(&hsm, "hsm", false, "wrap under the HSM key the server was started with (--master-key-pkcs11)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// masterKeyFile reads a hex master key, first creating the file with a
// fresh random key if it does not exist.
func masterKeyFile(path string) (string, bool, error) {
	created, err := app.EnsureMasterKeyFile(path)
	if err != nil {
		return "", false, usageError("--new-master-key-file: %v", err)
	}
	key, err := app.ReadMasterKey(path)
	if err != nil {
		return "", false, usageError("--new-master-key-file: %v", err)
	}
	defer clear(key)
	return hex.EncodeToString(key), created, nil
}
