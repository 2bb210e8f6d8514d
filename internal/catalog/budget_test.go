package catalog

import (
	"encoding/json"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// threadCPU is the CPU time the calling OS thread has used (RUSAGE_THREAD),
// which other processes on a busy machine do not inflate.
func threadCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		t.Skip("no per-thread CPU time:", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// budgetSchema has the numeric keywords whose exact arithmetic (big.Rat)
// a huge exponent makes expensive.
const budgetSchema = `{"name":"t","inputSchema":{"type":"object","properties":{
 "n":{"type":"number","multipleOf":0.01,"minimum":-1e300,"maximum":1e300,"exclusiveMinimum":-1e301},
 "i":{"type":"integer","multipleOf":3},
 "a":{"type":"array","items":{"type":"number","multipleOf":0.5}}}}}`

// Arguments cost a bounded CPU time on their way to the upstream, however
// their numbers are spelled: parse (numbers bounded), exactness, then the
// pinned schema, in the gateway's order. 1e-1000000 (10 bytes) once cost
// 680 ms in the validator.
func FuzzArgumentsCPUBudget(f *testing.F) {
	schema, err := compileSchema(json.RawMessage(budgetSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{`{"n":1e-1000000}`, `{"n":1e400}`, `{"i":1e-400}`, `{"a":[1e-399,2e-398,1e399]}`,
		`{"a":[` + strings.Repeat(`1e-1000000,`, 19) + `1e-1000000]}`, // 220 bytes
		`{"n":0.` + "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001" + `e-400}`,
		`{"i":123456789012345678901234567890123456789012345678901234567890}`} {
		f.Add([]byte(s))
	}
	const budget = 50 * time.Millisecond
	f.Fuzz(func(t *testing.T, data []byte) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := threadCPU(t)
		v, err := strictjson.Parse(data)
		if err == nil {
			if err = jcs.Exact(v, "$"); err == nil {
				schema.Validate(v)
			}
		}
		if used := threadCPU(t) - start; used > budget {
			t.Errorf("%d bytes of arguments cost %s of CPU (budget %s): %.80q", len(data), used, budget, data)
		}
	})
}
