package policy

// The risk score of a call, 0–100, is
//
//	base  = sensitivity + autonomy + irreversibility + exposure
//	score = clamp(max(base, tier floor) + Σ adjustments of matching rules, 0, 100)
//
// sensitivity     the most sensitive data class of the tool (0–40):
//                 public 0, internal 10, unclassified and any other 15,
//                 pii 30, financial 30, regulated 35, secret 40
// autonomy        20 for a service account (an agent acting on its own),
//                 0 for a human's key
// irreversibility 25 for an irreversible tool (unlabelled: destructive hint)
// exposure        15 for an egress tool (unlabelled: open-world hint)
// tier floor      low 0, medium 25, high 50, critical 75
//
// Rule conditions see the base score as risk (before adjustments).

var classWeight = map[string]int{
	ClassPublic: 0, ClassInternal: 10, ClassUnclassified: 15,
	ClassPII: 30, ClassFinancial: 30, ClassRegulated: 35, ClassSecret: 40,
}

const (
	weightOther        = 15
	weightAutonomy     = 20
	weightIrreversible = 25
	weightEgress       = 15
)

var tierFloor = map[string]int{"low": 0, "medium": 25, "high": 50, "critical": 75}

// BaseScore is the score of a call by a service account (or not) to a
// tool with labels l, before rule adjustments.
func BaseScore(l Labels, service bool) int {
	s := 0
	for _, c := range l.DataClasses {
		w, ok := classWeight[c]
		if !ok {
			w = weightOther
		}
		s = max(s, w)
	}
	if service {
		s += weightAutonomy
	}
	if l.Irreversible {
		s += weightIrreversible
	}
	if l.Egress {
		s += weightEgress
	}
	return clamp(max(s, tierFloor[l.Risk]))
}

func clamp(s int) int { return min(max(s, 0), 100) }
