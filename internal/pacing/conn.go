package pacing

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/netconn"
)

// stateKey is the connection-context key of a *connState.
type stateKey struct{}

// ConnContext is an http.Server.ConnContext for servers that pace: it does
// what netconn.ConnContext does and also attaches the per-connection pacing
// state (estimator, previous response's counters). The state lives in the
// connection's context, so it is dropped with the connection: no map, no
// cleanup hook.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	ctx = netconn.ConnContext(ctx, c)
	if tcp, ok := netconn.Unwrap(c).(*net.TCPConn); ok {
		return context.WithValue(ctx, stateKey{}, &connState{tcp: tcp, remote: tcp.RemoteAddr().String()})
	}
	return ctx
}

// HeldSocket is a response's handle on its connection's socket given by a
// server that serves each response on its own handle (internal/evhttp):
// Control works during the response and, after it, as long as a Hold lasts
// (the watcher that follows delivery holds it).
type HeldSocket interface {
	syscall.RawConn
	Hold() (release func())
}

// SocketContext is the counterpart of ConnContext for such servers, called
// per request: slot is the connection's (the pacing state is kept there
// between responses) and sock the socket of this response.
func SocketContext(ctx context.Context, slot *any, sock HeldSocket) context.Context {
	cs, _ := (*slot).(*connState)
	if cs == nil {
		cs = &connState{}
		*slot = cs
	}
	cs.mu.Lock()
	cs.rc, cs.err = sock, nil
	cs.mu.Unlock()
	return context.WithValue(ctx, stateKey{}, cs)
}

// snapshot is what a response leaves for the next one on its connection.
type snapshot struct {
	valid   bool
	retrans uint32 // tcpi_total_retrans
	segsOut uint32 // tcpi_data_segs_out
	paced   bool
}

// connState is the pacing state of one connection. Requests on an HTTP/1.1
// connection run one after the other; the mutex covers HTTP/2 streams and
// the response watcher.
type connState struct {
	mu     sync.Mutex
	tcp    *net.TCPConn    // net/http: the connection (nil with SocketContext)
	rc     syscall.RawConn // the socket (SocketContext: this response's)
	remote string          // the client's address, for log lines
	err    error           // set when the socket cannot be reached

	// Scratch space of the prebuilt Control callbacks (no allocation per
	// call).
	ti      unix.TCPInfo
	infoErr error
	infoFn  func(fd uintptr)
	setOpt  int
	setLvl  int
	setVal  uint64
	setErr  error
	setFn   func(fd uintptr)

	cc         string // congestion control, read once
	noRefresh  bool   // re-selecting the congestion control failed once
	lowatSet   bool   // TCP_NOTSENT_LOWAT is set (paced or watched responses)
	responses  int    // media responses started on the connection
	sinceProbe int
	lastProbe  time.Time
	prev       snapshot
	est        estimator
	warned     bool // a malformed specification was logged at warn level
	active     int  // media responses in progress (HTTP/2)
	watch      *watcher
}

// init reaches the socket once (with SocketContext, each response's socket
// is set before).
func (cs *connState) init() error {
	if cs.err != nil {
		return cs.err
	}
	if cs.rc == nil {
		rc, err := cs.tcp.SyscallConn()
		if err != nil {
			cs.err = fmt.Errorf("pacing: socket of %v: %w", cs.remote, err)
			return cs.err
		}
		cs.rc = rc
	}
	if cs.infoFn != nil {
		return nil
	}
	cs.infoFn = func(fd uintptr) { cs.infoErr = getTCPInfo(int(fd), &cs.ti) }
	cs.setFn = func(fd uintptr) {
		if cs.setOpt == unix.SO_MAX_PACING_RATE {
			cs.setErr = unix.SetsockoptUint64(int(fd), cs.setLvl, cs.setOpt, cs.setVal)
		} else {
			cs.setErr = unix.SetsockoptInt(int(fd), cs.setLvl, cs.setOpt, int(cs.setVal))
		}
	}
	return nil
}

// info reads TCP_INFO into cs.ti. Call with cs.mu held.
func (cs *connState) info() (*unix.TCPInfo, error) {
	if err := cs.rc.Control(cs.infoFn); err != nil {
		return nil, fmt.Errorf("pacing: TCP_INFO: %w", err)
	}
	if cs.infoErr != nil {
		return nil, fmt.Errorf("pacing: TCP_INFO: %w", cs.infoErr)
	}
	return &cs.ti, nil
}

// setsockopt sets an integer option. Call with cs.mu held.
func (cs *connState) setsockopt(level, opt int, v uint64) error {
	cs.setLvl, cs.setOpt, cs.setVal = level, opt, v
	if err := cs.rc.Control(cs.setFn); err != nil {
		return err
	}
	return cs.setErr
}

// setPacingRate sets SO_MAX_PACING_RATE in bytes/s; 0 restores the default
// (unlimited, ^0). Call with cs.mu held.
func (cs *connState) setPacingRate(rate uint64) error {
	if rate == 0 {
		rate = ^uint64(0)
	}
	if err := cs.setsockopt(unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, rate); err != nil {
		return fmt.Errorf("pacing: SO_MAX_PACING_RATE %d: %w", rate, err)
	}
	return nil
}

// changePacingRate moves SO_MAX_PACING_RATE from old to rate (bytes/s, 0:
// unlimited); pacing is the socket's current pacing rate
// (tcpi_pacing_rate). Call with cs.mu held.
//
// Lowering takes effect at once, but the kernel only lowers: a raised cap
// reaches the socket's pacing rate when the congestion control recomputes
// it at the next ACK, so the first TSO packet after a raise would still be
// spaced at the old, lower rate (on loopback a 64 KB packet: seconds after
// a 150 kbit/s cap). For BBR, re-selecting the congestion control runs its
// init, which sets the pacing rate from cwnd/RTT at once (bounded by the new
// cap); BBR then starts over in STARTUP with its RTT estimate kept. Other
// congestion controls keep the old rate until the next ACK. refresh false
// skips the re-initialisation (a probe: BBR's STARTUP with the cwnd it has
// would send a burst that rebuilds the queue the pacing removed; BBR finds
// the raised room itself within a few round trips).
func (cs *connState) changePacingRate(old, rate, pacing uint64, refresh bool) error {
	if err := cs.setPacingRate(rate); err != nil {
		return err
	}
	raised := old > 0 && (rate == 0 || rate > old)
	if !refresh || !raised || pacing > old || cs.congestion() != "bbr" || cs.noRefresh {
		return nil
	}
	var e1, e2 error
	cs.rc.Control(func(fd uintptr) {
		if e1 = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "reno"); e1 == nil {
			e2 = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "bbr")
		}
	})
	switch {
	case e1 != nil:
		cs.noRefresh = true // not allowed here: keep the kernel's behaviour
	case e2 != nil:
		cs.noRefresh, cs.cc = true, "reno"
		return fmt.Errorf("pacing: the socket is left on reno: TCP_CONGESTION bbr: %w", e2)
	}
	return nil
}

// congestion returns the socket's congestion control (read once).
func (cs *connState) congestion() string {
	if cs.cc != "" {
		return cs.cc
	}
	cs.rc.Control(func(fd uintptr) {
		cs.cc, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if cs.cc == "" {
		cs.cc = "?"
	}
	return cs.cc
}

// bbrPacingGain returns BBR's current pacing gain (×256), 0 when unknown.
func bbrPacingGain(rc syscall.RawConn) uint32 {
	var gain uint32
	rc.Control(func(fd uintptr) {
		if bi, err := unix.GetsockoptTCPCCBBRInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_CC_INFO); err == nil {
			gain = bi.Pacing_gain
		}
	})
	return gain
}

// getTCPInfo is unix.GetsockoptTCPInfo into a caller-owned struct (no
// allocation).
func getTCPInfo(fd int, ti *unix.TCPInfo) error {
	l := uint32(unsafe.Sizeof(*ti))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(ti)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// SocketPacingRate reads the SO_MAX_PACING_RATE of a connection (bytes/s;
// ^0 when unlimited): for tests and debug logs.
func SocketPacingRate(c *net.TCPConn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	return socketPacingRate(rc)
}

func socketPacingRate(rc syscall.RawConn) (uint64, error) {
	var v uint64
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE)
	}); err != nil {
		return 0, err
	}
	return v, gerr
}

// TCPInfo reads TCP_INFO of a connection: for tests and diagnostics.
func TCPInfo(c *net.TCPConn) (*unix.TCPInfo, error) {
	var ti unix.TCPInfo
	err := netconn.Control(c, func(fd int) error { return getTCPInfo(fd, &ti) })
	return &ti, err
}

// phaseOf classifies the socket's sending phase: recovery when the
// congestion state is CWR, Recovery or Loss; slow start when cwnd is below
// ssthresh (for BBR, whose ssthresh stays infinite: in STARTUP, known by
// its pacing gain); congestion avoidance otherwise.
func phaseOf(ti *unix.TCPInfo, cc string, bbrGain func() uint32) Phase {
	if ti.Ca_state >= 2 { // TCP_CA_CWR, TCP_CA_Recovery, TCP_CA_Loss
		return PhaseRecovery
	}
	if cc == "bbr" {
		// STARTUP paces at 2.89x (740/256); the gain is 0 until BBR has
		// seen its first ACK, which is STARTUP too.
		if g := bbrGain(); g == 0 || g > 2*256 {
			return PhaseSlowStart
		}
		return PhaseCongAvoid
	}
	if ti.Snd_cwnd < ti.Snd_ssthresh {
		return PhaseSlowStart
	}
	return PhaseCongAvoid
}
