package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/ostiary/ostiary/internal/adminapi"
)

// savedLogin is what 'ostiary login' keeps in the user's config directory
// (0600): the identity provider's tokens for one Ostiary server.
type savedLogin struct {
	Addr         string    `json:"addr"` // the server these tokens are for; never sent elsewhere
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	TokenURL     string    `json:"token_url"`
	Resource     string    `json:"resource"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// loginFile is where the login is kept: OSTIARY_CONFIG_DIR, else
// $XDG_CONFIG_HOME/ostiary, else the platform's user config directory.
func (e *env) loginFile() (string, error) {
	if d := e.getenv("OSTIARY_CONFIG_DIR"); d != "" {
		return filepath.Join(d, "login.json"), nil
	}
	if d := e.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "ostiary", "login.json"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find your config directory (set OSTIARY_CONFIG_DIR): %w", err)
	}
	return filepath.Join(d, "ostiary", "login.json"), nil
}

func (e *env) loginCmd() *cobra.Command {
	var clientID, issuer string
	var scopes []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "login --client-id ID",
		Short: "Sign the CLI in with your identity provider",
		Long: `Sign in with the identity provider the server at OSTIARY_ADDR trusts, in your
browser (authorization code with PKCE, redirected to a one-time listener on
127.0.0.1). The provider and Ostiary's resource are read from the server's
protected resource metadata. The tokens are kept in your config directory
(mode 0600) and used by every admin command when OSTIARY_TOKEN is not set;
they are refreshed when they expire, if the provider issued a refresh token.
ID is the CLI's client at the provider: a public (native) client allowed to
redirect to http://127.0.0.1/callback on any port.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" {
				return usageError("--client-id ID is required: the CLI's client at your identity provider")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return e.login(ctx, clientID, issuer, scopes)
		},
	}
	cmd.Flags().StringVar(&clientID, "client-id", "", "the CLI's client id at the identity provider")
	cmd.Flags().StringVar(&issuer, "issuer", "", "which of the server's identity providers to use (when it trusts several)")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "further scope to ask for (repeatable; offline_access for refresh tokens)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the sign-in in the browser")
	return cmd
}

func (e *env) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the tokens 'ostiary login' kept",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := e.loginFile()
			if err != nil {
				return err
			}
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, "signed out")
			return err
		},
	}
}

// resourceMeta is the part of RFC 9728 metadata login reads.
type resourceMeta struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	Scopes               []string `json:"scopes_supported"`
}

func (e *env) login(ctx context.Context, clientID, issuer string, extra []string) error {
	addr, err := e.addr()
	if err != nil {
		return err
	}
	hc, err := e.httpClient()
	if err != nil {
		return err
	}
	var meta resourceMeta
	if err := getJSON(ctx, hc, addr+"/.well-known/oauth-protected-resource/mcp", &meta); err != nil {
		return fmt.Errorf("reading the server's resource metadata: %w", err)
	}
	switch {
	case len(meta.AuthorizationServers) == 0:
		return fmt.Errorf("the server at %s trusts no identity provider (start it with --oidc-issuer)", addr)
	case issuer == "" && len(meta.AuthorizationServers) > 1:
		return usageError("the server trusts several identity providers; choose one with --issuer: %s", strings.Join(meta.AuthorizationServers, ", "))
	case issuer == "":
		issuer = meta.AuthorizationServers[0]
	case !slices.Contains(meta.AuthorizationServers, issuer):
		return fmt.Errorf("the server does not trust %s; it trusts %s", issuer, strings.Join(meta.AuthorizationServers, ", "))
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, hc), issuer)
	if err != nil {
		return fmt.Errorf("discovering %s: %w", issuer, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	cfg := oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: "http://" + ln.Addr().String() + "/callback",
		Scopes: append(slices.Clone(meta.Scopes), extra...)}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client: its id in the form, no secret
	verifier, state := oauth2.GenerateVerifier(), rand.Text()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", meta.Resource))
	fmt.Fprintf(e.stdout, "Open this address in your browser to sign in:\n\n  %s\n\nWaiting for the sign-in…\n", authURL)
	code, err := awaitCode(ctx, ln, state)
	if err != nil {
		return err
	}
	tok, err := cfg.Exchange(oidc.ClientContext(ctx, hc), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", meta.Resource))
	if err != nil {
		return fmt.Errorf("exchanging the code: %w", err)
	}
	saved := savedLogin{Addr: addr, Issuer: issuer, ClientID: clientID, TokenURL: cfg.Endpoint.TokenURL, Resource: meta.Resource,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if err := e.saveLogin(saved); err != nil {
		return err
	}
	c, err := e.newClient()
	if err != nil {
		return err
	}
	var who adminapi.Whoami
	if err := c.do(ctx, "GET", "/whoami", nil, nil, &who, nil); err != nil {
		return fmt.Errorf("signed in at the provider, but the server refused the token: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "Signed in to %s as %s (via %s).\n", safe(addr), safe(who.User), safe(issuer))
	return err
}

// awaitCode serves the redirect: one request carrying the state it sent.
func awaitCode(ctx context.Context, ln net.Listener, state string) (string, error) {
	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			http.Error(w, "unexpected sign-in response", http.StatusBadRequest)
			return // not ours (or forged): keep waiting for the real one
		case q.Get("error") != "":
			res.err = fmt.Errorf("the identity provider refused: %s %s", safe(q.Get("error")), safe(q.Get("error_description")))
		case q.Get("code") == "":
			res.err = errors.New("the identity provider sent no code")
		default:
			res.code = q.Get("code")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if res.err != nil {
			io.WriteString(w, "Sign-in failed; see the terminal.\n")
		} else {
			io.WriteString(w, "Signed in. You can close this tab.\n")
		}
		select {
		case got <- res:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case res := <-got:
		return res.code, res.err
	case <-ctx.Done():
		return "", errors.New("no sign-in arrived in time")
	}
}

func (e *env) saveLogin(l savedLogin) error {
	f, err := e.loginFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f), ".login-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f)
}

// loadLogin returns the saved access token for addr, refreshing it when it
// has expired. A file anyone but its owner may read is refused.
func (e *env) loadLogin(ctx context.Context, addr string) (string, error) {
	f, err := e.loginFile()
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(f)
	if errors.Is(err, os.ErrNotExist) {
		return "", errors.New("OSTIARY_TOKEN is not set and you have not signed in: export the API key printed by 'ostiary init' (or 'ostiary keys create'), or run 'ostiary login'")
	}
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %o): refusing to use it; run 'ostiary login' again", f, fi.Mode().Perm())
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return "", err
	}
	var l savedLogin
	if err := json.Unmarshal(b, &l); err != nil {
		return "", fmt.Errorf("%s: %w; run 'ostiary login' again", f, err)
	}
	if l.Addr != addr {
		return "", fmt.Errorf("you signed in to %s, not %s (OSTIARY_ADDR): run 'ostiary login' for this server", safe(l.Addr), safe(addr))
	}
	if l.Expiry.IsZero() || e.now().Add(30*time.Second).Before(l.Expiry) {
		return l.AccessToken, nil
	}
	if l.RefreshToken == "" {
		return "", errors.New("your sign-in has expired: run 'ostiary login' again")
	}
	hc, err := e.httpClient()
	if err != nil {
		return "", err
	}
	cfg := oauth2.Config{ClientID: l.ClientID, Endpoint: oauth2.Endpoint{TokenURL: l.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := cfg.TokenSource(oidc.ClientContext(ctx, hc), &oauth2.Token{RefreshToken: l.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return "", fmt.Errorf("your sign-in has expired and could not be refreshed (%v): run 'ostiary login' again", err)
	}
	l.AccessToken, l.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		l.RefreshToken = tok.RefreshToken
	}
	if err := e.saveLogin(l); err != nil {
		return "", err
	}
	return l.AccessToken, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
