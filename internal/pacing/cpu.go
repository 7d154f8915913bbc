package pacing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuSampler turns successive reads of /proc/stat into the machine's CPU
// load over the interval between them (0..1, all CPUs, busy = everything
// but idle and iowait).
type cpuSampler struct {
	path              string
	lastBusy, lastAll uint64
	primed            bool
}

// sample reads the file and returns the load since the previous sample;
// ok is false on the first call.
func (c *cpuSampler) sample() (load float64, ok bool, err error) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 0, false, fmt.Errorf("cpu load: %w", err)
	}
	busy, all, err := parseProcStat(b)
	if err != nil {
		return 0, false, fmt.Errorf("cpu load: %s: %w", c.path, err)
	}
	defer func() { c.lastBusy, c.lastAll, c.primed = busy, all, true }()
	if !c.primed || all <= c.lastAll || busy < c.lastBusy {
		return 0, false, nil
	}
	return float64(busy-c.lastBusy) / float64(all-c.lastAll), true, nil
}

// parseProcStat reads the aggregate "cpu" line: user nice system idle
// iowait irq softirq steal (guest time is already in user and nice).
func parseProcStat(b []byte) (busy, all uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("no aggregate cpu line")
	}
	var v [8]uint64
	for i := 0; i < len(v) && i+1 < len(f); i++ {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("cpu field %d: %w", i+1, err)
		}
	}
	for _, x := range v {
		all += x
	}
	return all - v[3] - v[4], all, nil
}

// sysctl reads and writes integer sysctls under a directory
// (/proc/sys/net/ipv4; tests point it elsewhere).
type sysctl struct{ dir string }

func (s sysctl) get(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", name, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", name, err)
	}
	return v, nil
}

func (s sysctl) set(name string, v int) error {
	if err := os.WriteFile(filepath.Join(s.dir, name), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%d: %w", name, v, err)
	}
	return nil
}
