package pacing

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sluice-media/sluice/internal/sfv"
)

// HeaderName is Sluice's own request header carrying a full pacing
// specification (docs/pacing.md).
const HeaderName = "Sluice-Pacing"

// headerKey is HeaderName in canonical form.
const headerKey = "Sluice-Pacing"

// Phase is a TCP sending phase a specification may give separate values for.
type Phase uint8

// Phases. PhaseAny indexes the values that apply when a phase has none.
const (
	PhaseAny Phase = iota
	PhaseSlowStart
	PhaseCongAvoid
	PhaseRecovery
	numPhases
)

// String returns the parameter name of the phase in Sluice-Pacing.
func (p Phase) String() string {
	switch p {
	case PhaseSlowStart:
		return "ss"
	case PhaseCongAvoid:
		return "ca"
	case PhaseRecovery:
		return "rec"
	}
	return "any"
}

// Spec is an explicit pacing specification from a player: the Sluice-Pacing
// header, or the com.sluice-* CMCD custom keys. Zero values mean "not
// given". Values are as sent; Pacer clamps them when it applies them.
type Spec struct {
	// Off asks for no pacing of this response.
	Off bool
	// Rate is the pacing rate in kbit/s of TCP payload, per phase.
	Rate [numPhases]float64
	// Burst is the maximum number of segments per burst, per phase.
	Burst [numPhases]int
	// Gap is the minimum gap between bursts in ms, per phase.
	Gap [numPhases]float64
}

// Present reports whether the specification says anything.
func (s *Spec) Present() bool {
	if s.Off {
		return true
	}
	for i := range numPhases {
		if s.Rate[i] > 0 || s.Burst[i] > 0 || s.Gap[i] > 0 {
			return true
		}
	}
	return false
}

// PerPhase reports whether the specification has values for a phase.
func (s *Spec) PerPhase() bool {
	for i := PhaseSlowStart; i < numPhases; i++ {
		if s.Rate[i] > 0 || s.Burst[i] > 0 || s.Gap[i] > 0 {
			return true
		}
	}
	return false
}

// For returns the rate (kbit/s), burst (segments) and gap (ms) that apply in
// phase ph: the phase's own values, else the general ones.
func (s *Spec) For(ph Phase) (rate float64, burst int, gap float64) {
	rate, burst, gap = s.Rate[PhaseAny], s.Burst[PhaseAny], s.Gap[PhaseAny]
	if ph != PhaseAny {
		if s.Rate[ph] > 0 {
			rate = s.Rate[ph]
		}
		if s.Burst[ph] > 0 {
			burst = s.Burst[ph]
		}
		if s.Gap[ph] > 0 {
			gap = s.Gap[ph]
		}
	}
	return rate, burst, gap
}

// ParseSpec reads the Sluice-Pacing header of r. ok is false when the
// header is absent. Malformed members are skipped and reported in err; the
// members that parsed are kept.
func ParseSpec(r *http.Request) (s Spec, ok bool, err error) {
	vals := r.Header[headerKey]
	if len(vals) == 0 {
		return s, false, nil
	}
	var errs []error
	for _, v := range vals {
		perr := sfv.ParseDictionary(v, func(key string, it sfv.Item) error {
			if err := s.setMember(key, it); err != nil {
				errs = append(errs, err)
			}
			return nil
		})
		if perr != nil {
			errs = append(errs, perr)
		}
	}
	return s, true, errors.Join(errs...)
}

// setMember stores one Sluice-Pacing member: rate, burst, gap (each with
// optional ss, ca, rec parameters) or off. Unknown keys are ignored, so
// that later versions may add members.
func (s *Spec) setMember(key string, it sfv.Item) error {
	switch key {
	case "off":
		if it.Kind != sfv.Boolean {
			return typeErr(key, it, "a boolean")
		}
		s.Off = it.Bool
		return nil
	case "rate", "burst", "gap":
	default:
		return nil
	}
	if err := s.setValue(key, PhaseAny, it); err != nil {
		return err
	}
	return sfv.ParseParams(it.Params, func(pk string, pv sfv.Item) error {
		var ph Phase
		switch pk {
		case "ss":
			ph = PhaseSlowStart
		case "ca":
			ph = PhaseCongAvoid
		case "rec":
			ph = PhaseRecovery
		default:
			return nil
		}
		return s.setValue(key, ph, pv)
	})
}

// setValue stores a number for one member and phase. Zero is allowed for
// the general value ("none, except in the phases that have one").
func (s *Spec) setValue(key string, ph Phase, it sfv.Item) error {
	f, ok := it.Number()
	if !ok || f < 0 || (ph != PhaseAny && f == 0) {
		if ph != PhaseAny {
			key += ";" + ph.String()
		}
		return typeErr(key, it, "a positive number")
	}
	switch key[0] {
	case 'r':
		s.Rate[ph] = f
	case 'b':
		if f != float64(int64(f)) {
			return fmt.Errorf("%s: %g is not a whole number of segments", key, f)
		}
		s.Burst[ph] = int(min(f, 1<<20))
	case 'g':
		s.Gap[ph] = f
	}
	return nil
}

// merge fills the values s does not have from o (s wins).
func (s *Spec) merge(o *Spec) {
	s.Off = s.Off || o.Off
	for i := range numPhases {
		if s.Rate[i] == 0 {
			s.Rate[i] = o.Rate[i]
		}
		if s.Burst[i] == 0 {
			s.Burst[i] = o.Burst[i]
		}
		if s.Gap[i] == 0 {
			s.Gap[i] = o.Gap[i]
		}
	}
}
