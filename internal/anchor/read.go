package anchor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// Newest is the newest checkpoint an anchor holds.
type Newest struct {
	Checkpoint audit.Checkpoint
	Found      bool // the anchor holds at least one checkpoint
	Skipped    int  // lines of a file that are not checkpoints (a write cut short)
	// Older are a file's other checkpoints, each distinct (seq, hash,
	// root) once, in file order: a log must match them all, or it is a
	// fork (a directory rolled back and run on), whose own newer
	// checkpoints the file holds too. A witness answers only its newest.
	Older []audit.Checkpoint
}

// MaxLine bounds one line of an anchor file.
const MaxLine = 4 << 10

// ReadNewest reads the newest checkpoint (highest seq) held by the anchor
// src: a file written by serve --anchor, or a witness URL, whose GET
// answers the newest checkpoint it accepted. Signatures are checked by
// the caller (audit.VerifyLog) against the key it trusts.
func ReadNewest(ctx context.Context, src, ca string) (Newest, error) {
	a, err := config.ParseAnchor(src)
	if err != nil {
		return Newest{}, err
	}
	if a.File != "" {
		return readFile(a.File)
	}
	client, err := Client(ca, 10*time.Second)
	if err != nil {
		return Newest{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return Newest{}, errors.New("cannot build the request")
	}
	resp, err := client.Do(req)
	if err != nil {
		return Newest{}, fmt.Errorf("witness %s: %w", Redact(a.URL), unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxWitnessAnswer+1))
	if err != nil {
		return Newest{}, fmt.Errorf("witness %s: %w", Redact(a.URL), unwrap(err))
	}
	if resp.StatusCode == http.StatusNotFound {
		return Newest{}, nil // holds nothing yet
	}
	if resp.StatusCode/100 != 2 {
		return Newest{}, fmt.Errorf("witness %s answered %s", Redact(a.URL), resp.Status)
	}
	if len(b) > MaxWitnessAnswer {
		return Newest{}, fmt.Errorf("witness %s: answer larger than %d bytes", Redact(a.URL), MaxWitnessAnswer)
	}
	var cp audit.Checkpoint
	if err := cp.UnmarshalJSON([]byte(strings.TrimSpace(string(b)))); err != nil {
		return Newest{}, fmt.Errorf("witness %s: not a checkpoint: %w", Redact(a.URL), err)
	}
	return Newest{Checkpoint: cp, Found: true}, nil
}

func readFile(path string) (Newest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Newest{}, err
	}
	defer f.Close()
	var n Newest
	var all []audit.Checkpoint
	type key struct {
		seq        uint64
		hash, root [32]byte
	}
	seen := map[key]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, MaxLine), MaxLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var cp audit.Checkpoint
		if err := cp.UnmarshalJSON(line); err != nil {
			n.Skipped++
			continue
		}
		k := key{seq: cp.Seq, hash: cp.Hash}
		copy(k.root[:], cp.Root)
		if !seen[k] {
			seen[k] = true
			all = append(all, cp)
		}
		if !n.Found || cp.Seq > n.Checkpoint.Seq {
			n.Checkpoint, n.Found = cp, true
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	for _, cp := range all {
		if cp.Seq != n.Checkpoint.Seq || cp.Hash != n.Checkpoint.Hash || string(cp.Root) != string(n.Checkpoint.Root) {
			n.Older = append(n.Older, cp)
		}
	}
	return n, nil
}

func unwrap(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// tailBytes is how much of an anchor file's end a start reads: many
// lines, never the whole file (which grows by a line a second).
const tailBytes = 64 << 10

// ReadLatest reads what a start compares its log with: a witness's newest
// checkpoint, or the newest among the complete lines at the end of a file
// (the last 64 KiB: the file is appended in order, and a start need not
// read a year of lines). A file that does not exist yet holds nothing.
func ReadLatest(ctx context.Context, a config.Anchor, ca string) (Newest, error) {
	if a.URL != "" {
		return ReadNewest(ctx, a.URL, ca)
	}
	f, err := os.Open(a.File)
	if errors.Is(err, os.ErrNotExist) {
		return Newest{}, nil
	}
	if err != nil {
		return Newest{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Newest{}, err
	}
	if !st.Mode().IsRegular() {
		return Newest{}, fmt.Errorf("%s is not a regular file", a.File)
	}
	off := max(st.Size()-tailBytes, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return Newest{}, err
	}
	lines := strings.Split(string(b), "\n")
	if off > 0 {
		lines = lines[1:] // the first is cut
	}
	var n Newest
	for _, line := range lines {
		var cp audit.Checkpoint
		if line == "" || cp.UnmarshalJSON([]byte(line)) != nil {
			continue
		}
		if !n.Found || cp.Seq > n.Checkpoint.Seq {
			n.Checkpoint, n.Found = cp, true
		}
	}
	return n, nil
}
