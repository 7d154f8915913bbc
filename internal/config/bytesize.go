package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes, written in flags and YAML as a number
// with an optional unit. One convention for every size (--ram,
// --sender-ram, --cache-size, --max-object, --ingest-memory, --min-free,
// --max-box, --standby-buffer and their YAML keys):
//
//   - a bare letter or an IEC unit is a power of 1024: K, Ki, KiB = 2¹⁰;
//     M, Mi, MiB = 2²⁰; G, Gi, GiB = 2³⁰; T, Ti, TiB = 2⁴⁰ (2G = 2GiB);
//   - an SI unit spelled with B is a power of 1000: kB or KB = 10³,
//     MB = 10⁶, GB = 10⁹, TB = 10¹² (2GB = 2×10⁹);
//   - B or no unit is bytes.
//
// Letters are case-insensitive except that "b" alone is not a unit;
// fractions are allowed (1.5G) and rounded down to a whole byte. YAML also
// takes a plain integer.
type ByteSize int64

// units maps a lower-cased unit to its multiplier.
var units = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseByteSize parses a size as ByteSize documents; negative sizes are
// refused.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := units[unit]
	if t[i:] == "b" {
		ok = false
	}
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || math.IsInf(f*mult, 0) || f*mult > math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want bytes with an optional unit: K, M, G, T (or KiB, MiB, GiB, TiB: powers of 1024) or kB, MB, GB, TB (powers of 1000)", s)
	}
	return ByteSize(f * mult), nil
}

// String formats the size in the largest binary unit that divides it
// (512MiB, 1GiB), else in bytes; ParseByteSize reads it back.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML strings and
// plain integers alike).
func (b *ByteSize) UnmarshalText(p []byte) error { return b.Set(string(p)) }

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
