package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/export"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/review"
)

// alertFeedSize is how many committed records wait for the alert rules;
// beyond it they are dropped (counted, on record), never waited for.
const alertFeedSize = 8192

// openOps wires access reviews, and governance alerts when --alerts names
// a rules file.
func (a *App) openOps(ctx context.Context, ids *identity.Service) error {
	var err error
	if a.reviews, err = review.New(review.Config{Store: a.store, Directory: a.store, Identities: ids, History: a.store,
		Tools: a.toolNames, Auditor: a.writer, Now: a.now}); err != nil {
		return err
	}
	if err := a.openExport(); err != nil {
		return err
	}
	if a.cfg.Alerts == "" {
		return nil
	}
	doc, err := readAlerts(a.cfg.Alerts)
	if err != nil {
		return err
	}
	var password string
	if doc.SMTP != nil && doc.SMTP.PasswordFile != "" {
		b, err := readSecretFile(doc.SMTP.PasswordFile)
		if err != nil {
			return fmt.Errorf("alerts: smtp password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	key, err := a.webhookKey()
	if err != nil {
		return err
	}
	if a.alerts, err = alert.New(alert.Config{Doc: doc, Store: a.store, Auditor: a.writer, Now: a.now, Logger: a.log, Key: key,
		Owner: a.toolOwner, IsService: a.isService, SMTPPassword: password, Backoff: a.cfg.WebhookBackoff}); err != nil {
		return err
	}
	if err := a.alerts.Load(ctx); err != nil {
		return err
	}
	a.reviews.SetAlerter(a.alerts)
	a.alertFeed = a.writer.Subscribe(alertFeedSize)
	return nil
}

// CheckAlerts reads and checks an alert rules file, as serve --alerts
// does before it starts.
func CheckAlerts(path string) error {
	_, err := readAlerts(path)
	return err
}

// readAlerts reads and checks an alert rules file; its errors name the
// file and the line.
func readAlerts(path string) (*alert.Document, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--alerts: %w", err)
	}
	if st.Size() > alert.MaxSource {
		return nil, fmt.Errorf("--alerts %s: a rules file is at most %d KiB", path, alert.MaxSource>>10)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--alerts: %w", err)
	}
	doc, err := alert.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--alerts %s: %w", path, err)
	}
	return doc, nil
}

// webhookKey is the key that signs webhook deliveries (approvals and
// alerts alike), created in the data directory if none is configured.
func (a *App) webhookKey() ([]byte, error) {
	keyFile := a.cfg.WebhookKeyFile
	if keyFile == "" {
		keyFile = a.layout.WebhookKey()
		if _, err := EnsureMasterKeyFile(keyFile); err != nil { // 64 random hex characters, 0600
			return nil, fmt.Errorf("cannot create the webhook signing key: %w", err)
		}
	}
	return readWebhookKey(keyFile)
}

func (a *App) toolNames() []string {
	var out []string
	for _, t := range a.catalog.Snapshot().Visible(func(string) bool { return true }) {
		out = append(out, t.Name)
	}
	slices.Sort(out)
	return out
}

func (a *App) toolOwner(tool string) string {
	if e, ok := a.catalog.Snapshot().Lookup(tool); ok && e.Labels != nil {
		return e.Labels.Owner
	}
	return ""
}

func (a *App) isService(user string) bool {
	u, err := a.store.UserByName(context.Background(), user)
	return err == nil && u.Service
}

// startOps runs the alert rules over the records as they are written,
// escalates unacknowledged alerts and alerts overdue review items, every
// --alerts-check-every, until the server stops.
func (a *App) startOps() {
	every := a.cfg.AlertsEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	a.opsDone = make(chan struct{}, 3)
	if a.exporter != nil {
		go func() {
			defer func() { a.opsDone <- struct{}{} }()
			a.exporter.Run(a.base)
		}()
	} else {
		a.opsDone <- struct{}{}
	}
	if a.alerts != nil {
		go func() {
			defer func() { a.opsDone <- struct{}{} }()
			a.alerts.Run(a.base, a.alertFeed, every)
		}()
	} else {
		a.opsDone <- struct{}{}
	}
	go func() {
		defer func() { a.opsDone <- struct{}{} }()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-a.base.Done():
				return
			case <-t.C:
				if a.writer.Stopped() != nil {
					continue
				}
				if err := a.reviews.Overdue(a.base); err != nil {
					a.log.Error("access review overdue check", "err", err)
				}
			}
		}
	}()
}

// stopOps waits for what startOps started (the base context has ended).
func (a *App) stopOps() {
	if a.opsDone != nil {
		for range cap(a.opsDone) {
			<-a.opsDone
		}
	}
}

// Alerts is the alert service (nil without --alerts); tests drive it.
func (a *App) Alerts() *alert.Service { return a.alerts }

// Reviews is the access review service; tests drive it.
func (a *App) Reviews() *review.Service { return a.reviews }

// ParseExports reads every --export, naming the one that is wrong.
func ParseExports(specs []string) ([]export.Spec, error) {
	var out []export.Spec
	for i, s := range specs {
		sp, err := export.ParseSpec(s)
		if err != nil {
			return nil, fmt.Errorf("--export %d: %w", i+1, err)
		}
		out = append(out, sp)
	}
	return out, nil
}

// openExport wires the SIEM exports (--export).
func (a *App) openExport() error {
	if len(a.cfg.Exports) == 0 {
		return nil
	}
	specs, err := ParseExports(a.cfg.Exports)
	if err != nil {
		return err
	}
	var roots *x509.CertPool
	if a.cfg.ExportCAFile != "" {
		b, err := os.ReadFile(a.cfg.ExportCAFile)
		if err != nil {
			return fmt.Errorf("--export-ca-file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return fmt.Errorf("--export-ca-file %s holds no PEM certificate", a.cfg.ExportCAFile)
		}
	}
	key, err := a.webhookKey()
	if err != nil {
		return err
	}
	a.exporter, err = export.New(export.Config{Specs: specs, Dir: filepath.Join(a.layout.Dir, "export"), Source: a.store, Auditor: a.writer,
		Logger: a.log, Now: a.now, Key: key, RootCAs: roots, Every: a.cfg.ExportEvery})
	return err
}
