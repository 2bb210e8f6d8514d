package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

func (e *env) initCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init --data DIR",
		Short: "Create a data directory: store, signing keys, and the admin user with its API key",
		Long: `Create a data directory: the SQLite store, the audit signing key, the API key
hashing key, the built-in roles (admin, auditor) and the user "admin" with role
admin. The admin's API key is printed once and stored nowhere; keep it safe.
Refuses a directory that is already initialised.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir = e.dataDir(dir)
			if dir == "" {
				return usageError("--data DIR is required")
			}
			key, err := app.Init(cmd.Context(), dir, time.Now)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(map[string]string{"data_dir": dir, "user": "admin", "api_key": key})
			}
			l := app.Layout{Dir: dir}
			fmt.Fprintf(e.stdout, "Initialised %s.\n\nAPI key of user admin (shown once; store it safely):\n\n  %s\n\n", dir, key)
			fmt.Fprintf(e.stdout, "Audit public key: %s (give auditors a copy)\n", l.SigningPub())
			exe, _ := os.Executable()
			fmt.Fprintf(e.stdout, "Next: %s serve --data %s\n", selfCommand(exe), shellQuote(dir))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "data directory to create (or OSTIARY_DATA)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable output")
	return cmd
}

func (e *env) dataDir(flag string) string {
	if flag != "" {
		return flag
	}
	return e.getenv("OSTIARY_DATA")
}

// rateFlag is a pflag.Value for a config.Rate.
type rateFlag struct{ r *config.Rate }

func (f rateFlag) String() string { return "" }
func (f rateFlag) Type() string   { return "rate" }
func (f rateFlag) Set(s string) error {
	r, err := config.ParseRate(s)
	if err != nil {
		return err
	}
	*f.r = r
	return nil
}

// serverFlags binds the flags serve and demo share.
func (e *env) serverFlags(cmd *cobra.Command, cfg *config.Config) {
	for _, rf := range []struct {
		name, def string
		r         *config.Rate
	}{{"rate-key", "100/s", &cfg.RateKey}, {"rate-user", "200/s", &cfg.RateUser}, {"rate-tool", "500/s", &cfg.RateTool}} {
		cmd.Flags().Var(rateFlag{rf.r}, rf.name, "request rate limit per "+strings.TrimPrefix(rf.name, "rate-")+": N/s or N/m[,burst=B], or off (default "+rf.def+")")
	}
	cmd.Flags().IntVar(&cfg.UserSessions, "max-sessions-per-user", 0, "open 2025-era MCP sessions one user may hold (default 64)")
	cmd.Flags().IntVar(&cfg.UserStreams, "max-streams-per-user", 0, "open event streams one user may hold (default 16)")
	cmd.Flags().IntVar(&cfg.UserPending, "max-pending-per-user", 0, "approval requests one user may have pending (default 20)")
	cmd.Flags().IntVar(&cfg.UserCalls, "max-calls-per-user", 0, "tool calls one user may have in flight, held ones included (default 32)")
	cmd.Flags().IntVar(&cfg.UpstreamSlots, "upstream-concurrency", 0, "calls in flight per upstream, at most half of them for one user and half for one tool; a call finding none free is refused at once (default 64)")
	cmd.Flags().Var(rateFlag{&cfg.RateAdminWrite}, "rate-admin-write", "admin API writes allowed per API key: N/s or N/m[,burst=B], or off (default 10/s,burst=50; then 429 with Retry-After)")
	cmd.Flags().Var(rateFlag{&cfg.RateAuthFail}, "rate-auth-fail", "failed authentications allowed per source address and per key id: N/s or N/m[,burst=B], or off (default 2/s,burst=20; then 429 with Retry-After)")
	cmd.Flags().StringVar(&cfg.DataDir, "data", "", "data directory (or OSTIARY_DATA)")
	cmd.Flags().StringVar(&cfg.Listen, "listen", "", "address to listen on, loopback only until TLS (default 127.0.0.1:8080, or OSTIARY_LISTEN)")
	cmd.Flags().StringVar(&cfg.LogFormat, "log-format", "", "operational log format: text or json")
	cmd.Flags().DurationVar(&cfg.CheckpointEvery, "checkpoint-every", 0, "interval between signed audit checkpoints (default 1s)")
	cmd.Flags().StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with; reloaded when it changes (or OSTIARY_TLS_CERT)")
	cmd.Flags().StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert, mode 0600 (or OSTIARY_TLS_KEY)")
	cmd.Flags().StringVar(&cfg.TLSMin, "tls-min", "", "minimum TLS version: 1.2 (default) or 1.3")
	cmd.Flags().DurationVar(&cfg.CallTimeout, "call-timeout", 0, "bound on one upstream call, even while progress keeps arriving (default 1m)")
	cmd.Flags().DurationVar(&cfg.StoreTimeout, "store-timeout", 0, "bound on every wait on the database (its lock held elsewhere, a slow disk): past it a call or change is refused with 503 (default 2s)")
	cmd.Flags().StringArrayVar(&cfg.Webhooks, "approval-webhook", nil, "POST approval events here, signed (https, or http to loopback; slack:URL for Slack's format; repeatable; or OSTIARY_APPROVAL_WEBHOOKS, comma-separated)")
	cmd.Flags().StringVar(&cfg.WebhookKeyFile, "webhook-key-file", "", "HMAC-SHA256 key of webhook signatures, at least 32 characters, mode 0600 (default DIR/keys/webhook-signing.key, created if missing; or OSTIARY_WEBHOOK_KEY_FILE)")
	cmd.Flags().StringArrayVar(&cfg.Anchors, "anchor", nil, "also push every signed audit checkpoint, as it is made, to this absolute file `PATH` outside the data directory (appended, fsync'd) or https `URL` of a witness (POSTed); repeatable; failures are logged and shown by /readyz, never block a call; 'audit verify --anchor' then refuses a rolled-back data directory")
	cmd.Flags().StringVar(&cfg.AnchorCA, "anchor-ca", "", "PEM `FILE` of the CA certificates trusted for https anchors (default: the system's)")
	cmd.Flags().StringVar(&cfg.Alerts, "alerts", "", "governance alert rules and their routes, a YAML `FILE` (see README, Operating Ostiary; or OSTIARY_ALERTS)")
	cmd.Flags().DurationVar(&cfg.AlertsEvery, "alerts-check-every", 0, "how often unacknowledged alerts are escalated and overdue access review items alerted (default 10s)")
	cmd.Flags().StringArrayVar(&cfg.Exports, "export", nil, "send the audit records to a SIEM, at least once from a durable cursor: FORMAT:TARGET, FORMAT jsonl or ocsf, TARGET file:/PATH, https://URL or syslog+tls://HOST:PORT (repeatable)")
	cmd.Flags().StringVar(&cfg.ExportCAFile, "export-ca-file", "", "PEM `FILE` of the CA certificates that --export's HTTPS and syslog servers are verified against (default: the system's)")
	cmd.Flags().DurationVar(&cfg.ApprovalWait, "approval-wait", 0, "how long a call held for approval waits for it before answering with the request id (default 10s; 0s: answer at once)")
	cmd.Flags().StringArrayVar(&cfg.RequireReview, "require-review", nil, "`ENV` whose governed objects (policy, tool versions, tool labels) change only through reviewed proposals ('ostiary proposals'); they are shared by every environment today, so naming one reviews all three (repeatable or comma-separated)")
	cmd.Flags().StringArrayVar(&cfg.RequireReviewKinds, "require-review-kinds", nil, "`KIND` of object whose changes are reviewed proposals: policy, tool-version, tool-labels, user-roles or all (repeatable or comma-separated; with user-roles, users cannot be created with roles, group mappings added, nor subjects linked to users holding roles)")
	cmd.Flags().IntVar(&cfg.ReplayMax, "replay-max", 0, "recorded tool-call decisions a policy proposal's replay reads at most, shared equally among the tools so that calls of one cannot crowd out another's (default 10000)")
	cmd.Flags().IntVar(&cfg.ReviewQuorum, "review-quorum", 0, "distinct reviewers a proposal needs, never its author nor a service account (default 1; a rollback to a reviewed version needs one)")
	cmd.Flags().StringVar(&cfg.MasterKeyFile, "master-key-file", "", "the vault's master key, 64 hex characters, mode 0600 (default DIR/keys/master.key; or OSTIARY_MASTER_KEY_FILE)")
	hsmFlags(cmd, cfg)
	cmd.Flags().StringArrayVar(&cfg.ElicitURLAllow, "elicit-url-allow", nil, "`HOST` a URL-mode elicitation may send the user to: exact, or *.domain for its subdomains; repeatable; when given, URLs to other hosts are refused (or OSTIARY_ELICIT_URL_ALLOW, ','-separated)")
	cmd.Flags().StringArrayVar(&cfg.StdioAllow, "stdio-allow", nil, "absolute `PATH` of a program stdio upstreams may run, or of a directory whose programs they may run (not its subdirectories, nor shells and interpreters, which need their own entry); repeatable; none by default (or OSTIARY_STDIO_ALLOW, ':'-separated)")
	cmd.Flags().StringArrayVar(&cfg.OIDC.Issuers, "oidc-issuer", nil, "`URL` of an OpenID provider whose JWT access tokens authenticate beside API keys, exactly as its tokens' iss (https, or http to loopback; repeatable; or OSTIARY_OIDC_ISSUERS, comma-separated)")
	cmd.Flags().StringVar(&cfg.OIDC.Audience, "oidc-audience", "", "Ostiary's resource `URI` (RFC 8707): the audience every token must name, and the resource its metadata announces, e.g. https://ostiary.example.com/mcp (or OSTIARY_OIDC_AUDIENCE)")
	cmd.Flags().StringArrayVar(&cfg.OIDC.Scopes, "oidc-required-scope", nil, "`SCOPE` every token must carry (repeatable)")
	cmd.Flags().StringVar(&cfg.OIDC.Users, "oidc-users", "", "who may sign in: jit (default: a user is created on first sign-in, named by the username claim) or existing (only subjects linked with 'ostiary idp link'; or OSTIARY_OIDC_USERS)")
	cmd.Flags().StringVar(&cfg.OIDC.GroupsClaim, "oidc-groups-claim", "", "token claim listing the user's groups (default groups; roles is common too)")
	cmd.Flags().StringVar(&cfg.OIDC.UsernameClaim, "oidc-username-claim", "", "token claim naming a just-in-time user (default preferred_username)")
	cmd.Flags().DurationVar(&cfg.OIDC.Skew, "oidc-clock-skew", 0, "clock difference tolerated on a token's exp, nbf and iat (default 1m, at most 5m)")
	cmd.Flags().StringArrayVar(&cfg.AllowedOrigins, "allow-origin", nil, "browser origin allowed to call /mcp, e.g. https://chat.example.com (repeatable; or OSTIARY_ALLOWED_ORIGINS, comma-separated)")
	cmd.Flags().StringVar(&cfg.MetricsListen, "metrics-listen", "", "`ADDR` (host:port) to serve Prometheus metrics on, at /metrics, on a listener of its own: loopback only without TLS, with TLS the server's certificate (default: no metrics)")
	cmd.Flags().StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", "", "OTLP/HTTP `URL` to send OpenTelemetry traces to, e.g. http://127.0.0.1:4318 (/v1/traces is added to a URL without a path; default: no tracing)")
	cmd.Flags().Var(levelFlag{&cfg.LogLevel}, "log-level", "operational log level: debug, info, warn or error (default info; the MCP library's session chatter is debug)")
	// The variables these flags were documented with before the names were
	// derived from the flags.
	annotate(cmd, "allow-origin", annotEnv, "OSTIARY_ALLOWED_ORIGINS")
	annotate(cmd, "approval-webhook", annotEnv, "OSTIARY_APPROVAL_WEBHOOKS")
	annotate(cmd, "stdio-allow", annotEnvSep, ":")
	annotate(cmd, "oidc-issuer", annotEnv, "OSTIARY_OIDC_ISSUERS")
}

func annotate(cmd *cobra.Command, flag, key, value string) {
	if err := cmd.Flags().SetAnnotation(flag, key, []string{value}); err != nil {
		panic(err) // a flag renamed without its annotation: a programming error
	}
}

// levelFlag is a pflag.Value for a log level.
type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string { return "" }
func (f levelFlag) Type() string   { return "level" }
func (f levelFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return f.l.UnmarshalText([]byte(s))
	}
	return fmt.Errorf("%q: want debug, info, warn or error", s)
}

// serverConfig layers the flags over the defaults; applySettings has set
// the flags the command line left unset from the environment and the
// configuration file.
func (e *env) serverConfig(cmd *cobra.Command, flags config.Config) (config.Config, error) {
	cfg := config.Default()
	if cmd.Flags().Changed("log-level") {
		cfg.LogLevel = flags.LogLevel
	}
	if flags.DataDir != "" {
		cfg.DataDir = flags.DataDir
	}
	if flags.Listen != "" {
		cfg.Listen = flags.Listen
	}
	if flags.LogFormat != "" {
		cfg.LogFormat = flags.LogFormat
	}
	if flags.CheckpointEvery != 0 {
		cfg.CheckpointEvery = flags.CheckpointEvery
	}
	if flags.CallTimeout != 0 {
		cfg.CallTimeout = flags.CallTimeout
	}
	if flags.StoreTimeout != 0 {
		cfg.StoreTimeout = flags.StoreTimeout
	}
	if len(flags.Webhooks) > 0 {
		cfg.Webhooks = flags.Webhooks
	}
	if len(flags.Anchors) > 0 {
		cfg.Anchors = flags.Anchors
	}
	if flags.AnchorCA != "" {
		cfg.AnchorCA = flags.AnchorCA
	}
	if len(flags.Exports) > 0 {
		cfg.Exports = flags.Exports
	}
	if len(flags.OIDC.Issuers) > 0 {
		cfg.OIDC.Issuers = flags.OIDC.Issuers
	}
	if flags.OIDC.Audience != "" {
		cfg.OIDC.Audience = flags.OIDC.Audience
	}
	if flags.OIDC.Users != "" {
		cfg.OIDC.Users = flags.OIDC.Users
	}
	if len(flags.OIDC.Scopes) > 0 {
		cfg.OIDC.Scopes = flags.OIDC.Scopes
	}
	if flags.OIDC.GroupsClaim != "" {
		cfg.OIDC.GroupsClaim = flags.OIDC.GroupsClaim
	}
	if flags.OIDC.UsernameClaim != "" {
		cfg.OIDC.UsernameClaim = flags.OIDC.UsernameClaim
	}
	if flags.OIDC.Skew != 0 {
		cfg.OIDC.Skew = flags.OIDC.Skew
	}
	if flags.WebhookKeyFile != "" {
		cfg.WebhookKeyFile = flags.WebhookKeyFile
	}
	if flags.AlertsEvery < 0 {
		return cfg, fmt.Errorf("--alerts-check-every must be positive")
	}
	if flags.AlertsEvery > 0 {
		cfg.AlertsEvery = flags.AlertsEvery
	}
	if cmd.Flags().Changed("approval-wait") {
		cfg.ApprovalWait = flags.ApprovalWait
	}
	for _, r := range []struct {
		flag     string
		from, to *config.Rate
	}{{"rate-key", &flags.RateKey, &cfg.RateKey}, {"rate-user", &flags.RateUser, &cfg.RateUser}, {"rate-tool", &flags.RateTool, &cfg.RateTool}, {"rate-auth-fail", &flags.RateAuthFail, &cfg.RateAuthFail}, {"rate-admin-write", &flags.RateAdminWrite, &cfg.RateAdminWrite}} {
		if cmd.Flags().Changed(r.flag) {
			*r.to = *r.from
		}
	}
	for _, c := range []struct{ from, to *int }{{&flags.UserSessions, &cfg.UserSessions}, {&flags.UserStreams, &cfg.UserStreams}, {&flags.UserCalls, &cfg.UserCalls}, {&flags.UserPending, &cfg.UserPending}, {&flags.UpstreamSlots, &cfg.UpstreamSlots}} {
		if *c.from < 0 {
			return cfg, fmt.Errorf("a per-user limit must be positive")
		}
		if *c.from > 0 {
			*c.to = *c.from
		}
	}
	if len(flags.AllowedOrigins) > 0 {
		cfg.AllowedOrigins = flags.AllowedOrigins
	}
	if len(flags.RequireReview) > 0 {
		cfg.RequireReview = flags.RequireReview
	}
	if len(flags.RequireReviewKinds) > 0 {
		cfg.RequireReviewKinds = flags.RequireReviewKinds
	}
	if flags.ReviewQuorum != 0 {
		cfg.ReviewQuorum = flags.ReviewQuorum
	}
	if flags.ReplayMax != 0 {
		cfg.ReplayMax = flags.ReplayMax
	}
	if len(flags.StdioAllow) > 0 {
		cfg.StdioAllow = flags.StdioAllow
	}
	if len(flags.ElicitURLAllow) > 0 {
		cfg.ElicitURLAllow = flags.ElicitURLAllow
	}
	for _, f := range []struct{ from, to *string }{{&flags.MetricsListen, &cfg.MetricsListen}, {&flags.OTLPEndpoint, &cfg.OTLPEndpoint}, {&flags.TLSCert, &cfg.TLSCert}, {&flags.TLSKey, &cfg.TLSKey}, {&flags.TLSMin, &cfg.TLSMin},
		{&flags.MasterKeyFile, &cfg.MasterKeyFile}, {&flags.MasterKeyPKCS11, &cfg.MasterKeyPKCS11}, {&flags.PKCS11Token, &cfg.PKCS11Token},
		{&flags.PKCS11Key, &cfg.PKCS11Key}, {&flags.PKCS11PINFile, &cfg.PKCS11PINFile}, {&flags.Alerts, &cfg.Alerts}, {&flags.ExportCAFile, &cfg.ExportCAFile}} {
		if *f.from != "" {
			*f.to = *f.from
		}
	}
	// The PIN itself is never a flag (process lists, shell history), so it
	// has no derived name: it is read here, from its variable only.
	cfg.PKCS11PIN = e.getenv("OSTIARY_PKCS11_PIN")
	return cfg, nil
}

func (e *env) serveCmd() *cobra.Command {
	cmd, _ := e.newServe()
	return cmd
}

// newServe is the serve command and the Config its flags are bound to.
func (e *env) newServe() (*cobra.Command, *config.Config) {
	var flags config.Config
	var file string
	cmd := &cobra.Command{
		Use:   "serve --data DIR [--config FILE] [--listen 127.0.0.1:8080] [--tls-cert FILE --tls-key FILE [--tls-min 1.2|1.3]] [--stdio-allow PATH]...",
		Short: "Run the server on an initialised data directory",
		Long: `Run the server on an initialised data directory.

Every flag is also a key of the configuration file (--config, YAML: the flag's
name without the dashes, a list for a repeatable flag; see ostiary.example.yaml)
and an environment variable (OSTIARY_ and the name in capitals with '_' for '-',
e.g. OSTIARY_CALL_TIMEOUT; a repeatable flag's variable is ','-separated,
OSTIARY_STDIO_ALLOW ':'-separated). Flags win over the environment, the
environment over the file, the file over the defaults. 'ostiary config check
FILE' checks a file without starting anything.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				file = e.getenv("OSTIARY_CONFIG")
			}
			var settings []config.Setting
			if file != "" {
				var err error
				if settings, err = config.ReadFile(file); err != nil {
					return usageError("--config: %v", err)
				}
			}
			if err := e.applySettings(cmd, file, settings); err != nil {
				return usageError("%v", err)
			}
			cfg, err := e.serverConfig(cmd, flags)
			if err != nil {
				return usageError("%v", err)
			}
			if err := cfg.Validate(); err != nil {
				return usageError("%v", err)
			}
			if cfg.Alerts != "" {
				if err := app.CheckAlerts(cfg.Alerts); err != nil {
					return usageError("%v", err)
				}
			}
			if _, err := app.ParseExports(cfg.Exports); err != nil {
				return usageError("%v", err)
			}
			return e.serve(cmd.Context(), cfg, func(url string) {
				fmt.Fprintf(e.stdout, "ostiary serving on %s (data %s); stop with Ctrl-C\n", url, cfg.DataDir)
			})
		},
	}
	e.serverFlags(cmd, &flags)
	cmd.Flags().StringVar(&file, "config", "", "YAML configuration `FILE`: keys named like these flags (or OSTIARY_CONFIG)")
	return cmd, &flags
}

// serve runs the server until ctx ends, then stops it gracefully; started
// gets the server's base URL.
func (e *env) serve(ctx context.Context, cfg config.Config, started func(url string)) error {
	a, err := app.Open(ctx, cfg, cfg.Logger(e.stderr), time.Now)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		a.Close(context.Background())
		return err
	}
	started(a.URL())
	<-ctx.Done()
	return a.Close(context.Background())
}

func (e *env) auditVerifyCmd() *cobra.Command {
	var dir, pub, anchorCA string
	var anchors []string
	var asJSON, index bool
	cmd := &cobra.Command{
		Use:   "verify --data DIR [--public-key FILE] [--index] [--anchor FILE|URL]",
		Short: "Verify the audit chain offline; exit 3 naming the first bad record if it was tampered with",
		Long: `Read the audit log (DIR/audit) frame by frame: every frame's checksum, every
record's canonical form, hash and link, every signed checkpoint, and the latest
checkpoint kept beside it (which detects truncation). Works offline, also while
the server runs, and on a copy of the data directory. With --index, also verify
the database index that audit queries read, and that it holds the log's records.

With --anchor (a file or witness that 'serve --anchor' pushed checkpoints to),
also refuse a log older than the newest anchored checkpoint: the data directory
rolled back to an earlier state, with that state's own signed checkpoint.

Exit status: 0 the chain is whole; 3 it was modified, reordered, cut or had
records removed (the message names the first bad record), its checkpoints
are not signed by the trusted key, or it is older than, or differs from, the
newest anchored checkpoint; 1 it (or an anchor) could not be read.
Pass --public-key with your own copy of keys/audit-signing.pub to trust a key
that an intruder in the data directory cannot have replaced.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir = e.dataDir(dir)
			if dir == "" {
				return usageError("--data DIR is required")
			}
			sum, err := app.VerifyAudit(cmd.Context(), dir, pub, index, anchors, anchorCA)
			if audit.IsChainError(err) {
				return &exitError{code: ExitTampered, err: err}
			}
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(map[string]any{"ok": true, "records": sum.Records,
					"head": fmt.Sprintf("%x", sum.Head), "checkpoints": sum.Checkpoints, "latest_checkpoint": sum.LatestCheckpoint,
					"unattested": sum.Unattested, "key_id": sum.KeyID, "indexed": sum.Indexed, "anchored": sum.Anchored})
			}
			fmt.Fprintln(e.stdout, sum)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "data directory (or OSTIARY_DATA)")
	cmd.Flags().StringVar(&pub, "public-key", "", "trusted audit public key (default: DIR/keys/audit-signing.pub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable output")
	cmd.Flags().BoolVar(&index, "index", false, "also verify the index that audit queries read")
	cmd.Flags().StringArrayVar(&anchors, "anchor", nil, "an anchor `FILE` or witness URL (as given to serve --anchor): refuse a log older than its newest checkpoint (repeatable)")
	cmd.Flags().StringVar(&anchorCA, "anchor-ca", "", "PEM `FILE` of the CA certificates trusted for a witness URL (default: the system's)")
	return cmd
}

func (e *env) auditReindexCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "reindex --data DIR",
		Short: "Rebuild the audit index that queries read from the audit log (server stopped)",
		Long: `Empty the database's audit index and fill it again from the audit log, the
chain's durable copy: after the index was damaged or altered (audit verify
--index says so), or restored from an older backup than the log. The server
must be stopped: reindex takes the data directory's lock.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir = e.dataDir(dir)
			if dir == "" {
				return usageError("--data DIR is required")
			}
			n, err := app.ReindexAudit(cmd.Context(), dir, slog.New(slog.NewTextHandler(e.stderr, nil)))
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "audit index rebuilt from the log: %d records\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "data directory (or OSTIARY_DATA)")
	return cmd
}
