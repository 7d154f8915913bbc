package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Linux packet socket constants that package syscall does not name.
const (
	solPacket            = 263 // SOL_PACKET
	packetStatistics     = 6   // PACKET_STATISTICS
	packetVnetHdr        = 15  // PACKET_VNET_HDR
	packetIgnoreOutgoing = 23  // PACKET_IGNORE_OUTGOING
	ethPAll              = 0x0003

	vnetHdrLen        = 10 // struct virtio_net_hdr without num_buffers
	vnetFlagNeedsCsum = 1
	vnetGSONone       = 0
	vnetGSOTCPv4      = 1
	vnetGSOECN        = 0x80

	maxFrame = 65536 + vnetHdrLen + 64
)

// runDelay is `pacebench delay -a IF -b IF -delay D`: a userspace delay
// line bridging two interfaces of one network namespace. Every Ethernet
// frame received on one side leaves on the other D after it arrived (FIFO,
// one locked OS thread per direction sleeping with nanosleep). GSO
// super-frames (the sender's veth keeps TSO on, like a server NIC) are cut
// into MSS-sized TCP segments with full checksums, so that a qdisc behind
// the delay line sees, queues and drops single packets.
func runDelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("delay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "", "first interface")
	b := fs.String("b", "", "second interface")
	delay := fs.Duration("delay", 10*time.Millisecond, "one-way delay added in each direction")
	queue := fs.Int("queue", 1<<16, "frames held per direction before dropping")
	rt := fs.Bool("rt", true, "run the two forwarding threads per direction at real-time priority (SCHED_FIFO), so that a busy machine does not delay frames")
	stallsOut := fs.String("stalls", "", "write the delay line's stalls (frames released over 2 ms after they were due, by the kernel's receive time stamp) to this file at exit: one \"start-ns end-ns\" line per stall, Unix time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *a == "" || *b == "" {
		return errors.New("delay: want -a and -b interfaces")
	}
	fa, err := openPacket(*a)
	if err != nil {
		return err
	}
	defer syscall.Close(fa)
	fb, err := openPacket(*b)
	if err != nil {
		return err
	}
	defer syscall.Close(fb)

	ab := &direction{name: *a + "->" + *b, from: fa, to: fb, delay: *delay, max: *queue, rt: *rt}
	ba := &direction{name: *b + "->" + *a, from: fb, to: fa, delay: *delay, max: *queue, rt: *rt}
	fmt.Fprintf(stdout, "delay line %s <-> %s, %v each way\n", *a, *b, *delay)
	// Each direction is one locked OS thread that never waits for another
	// goroutine; spare Ps let it return from its syscalls at once even
	// when the machine is busy.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8))
	// No garbage collection: a stop-the-world waits for every thread of the
	// process, and under load a normal-priority one can take tens of ms to
	// get there, stalling the real-time forwarding threads. The forwarding
	// loop allocates nothing once its buffers exist; the limit is a guard.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(1 << 30)
	for _, d := range []*direction{ab, ba} {
		go d.run()
	}
	<-ctx.Done()
	// The readers block in read(2); closing the sockets would race with
	// them, so the process just reports and returns (exit ends the threads).
	for _, d := range []*direction{ab, ba} {
		fmt.Fprintln(stdout, d.report())
	}
	if *stallsOut != "" {
		var b []byte
		for _, d := range []*direction{ab, ba} {
			d.mu.Lock()
			for _, st := range d.stalls {
				b = fmt.Appendf(b, "%d %d\n", st[0], st[1])
			}
			d.mu.Unlock()
		}
		if err := os.WriteFile(*stallsOut, b, 0o644); err != nil {
			return fmt.Errorf("delay: %w", err)
		}
	}
	return nil
}

// openPacket opens a raw packet socket bound to an interface, with the
// virtio-net header (GSO information) on every frame and without seeing the
// frames it sends itself.
func openPacket(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, fmt.Errorf("interface %s: %w", ifname, err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPAll)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w (needs root)", err)
	}
	for _, o := range []struct{ level, opt, v int }{
		{solPacket, packetVnetHdr, 1},
		{solPacket, packetIgnoreOutgoing, 1},
		{syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64 << 20},
		{syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, 16 << 20},
		{syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1}, // receive time stamps: a frame is due delay after it arrived
	} {
		if err := syscall.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			syscall.Close(fd)
			return -1, fmt.Errorf("setsockopt %d/%d on %s: %w", o.level, o.opt, ifname, err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", ifname, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frame is one Ethernet frame (with a zero virtio-net header in front,
// ready to send) and when it is due to leave.
type frame struct {
	due  time.Time
	data []byte
}

// direction moves frames from one socket to the other.
type direction struct {
	name     string
	from, to int
	delay    time.Duration
	max      int // frames held before dropping
	rt       bool
	free     [][]byte // recycled frame buffers: no garbage, so no GC pauses
	scratch  [][]byte

	in, out, split, queueDrops, sendDrops, bad atomic.Int64
	late                                       atomic.Int64 // frames released over 1 ms late
	maxLate                                    atomic.Int64 // ns

	// stalls are the intervals (Unix ns) during which frames were held
	// over stallMin longer than the delay: the machine did not run the
	// delay line in time. Overlapping ones are merged.
	mu     sync.Mutex
	stalls [][2]int64
}

// stallMin: a frame released this much after it was due marks a stall of
// the delay line (under load the VM does not run it in time, even at
// real-time priority); the table leaves out the competing flow's probes
// that crossed one.
const stallMin = 2 * time.Millisecond

// stall records that a frame due at due left at now.
func (d *direction) stall(due, now time.Time) {
	a, b := due.UnixNano(), now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.stalls); n > 0 && a <= d.stalls[n-1][1] {
		d.stalls[n-1][1] = max(d.stalls[n-1][1], b)
		return
	}
	if len(d.stalls) < 1<<20 {
		d.stalls = append(d.stalls, [2]int64{a, b})
	}
}

func (d *direction) report() string {
	var st [2]uint32 // tp_packets, tp_drops
	l := uint32(8)
	_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(d.from), solPacket, packetStatistics,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
	sockDrops := int64(-1)
	if e == 0 {
		sockDrops = int64(st[1])
	}
	return fmt.Sprintf("%s: frames in %d, out %d, GSO frames split %d, dropped: socket %d, queue %d, qdisc %d, malformed %d; released >1 ms late %d, max lateness %v",
		d.name, d.in.Load(), d.out.Load(), d.split.Load(), sockDrops, d.queueDrops.Load(), d.sendDrops.Load(), d.bad.Load(),
		d.late.Load(), time.Duration(d.maxLate.Load()))
}

// realtime puts the calling OS thread on SCHED_FIFO at a middle priority
// (best effort: without the capability the thread stays as it is).
func (d *direction) realtime() {
	if !d.rt {
		return
	}
	prio := int32(50)
	const schedFIFO = 1
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, 0, schedFIFO, uintptr(unsafe.Pointer(&prio))); e != 0 {
		fmt.Fprintf(os.Stderr, "%s: SCHED_FIFO: %v (running at normal priority)\n", d.name, e)
	}
}

// run forwards frames on one locked OS thread: ppoll on the receiving
// socket with a timeout until the oldest held frame is due, read what has
// arrived (GSO frames cut into segments), send what is due. No channel or
// timer: nothing depends on the Go scheduler waking another thread.
func (d *direction) run() {
	runtime.LockOSThread()
	d.realtime()
	buf := make([]byte, maxFrame)
	alloc := d.alloc
	q := make([]frame, d.max) // ring, FIFO: due times never decrease
	head, held := 0, 0
	pfd := struct {
		fd             int32
		events, revent int16
	}{fd: int32(d.from), events: 1} // POLLIN
	var ts syscall.Timespec // outside the loop: no allocation per round
	// recvmsg(2) with the kernel's receive time stamp (SCM_TIMESTAMPNS):
	// a frame that waited in the socket while this thread did not run is
	// still due delay after it arrived, and the wait shows as a stall.
	var oob [64]byte
	iov := syscall.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	msg := syscall.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	cmsgLen := syscall.CmsgLen(0)
	for {
		var tsp *syscall.Timespec
		if held > 0 {
			wait := max(time.Until(q[head].due), 0)
			ts = syscall.NsecToTimespec(int64(wait))
			tsp = &ts
		}
		if tsp == nil || tsp.Sec > 0 || tsp.Nsec > 0 {
			_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(tsp)), 0, 0, 0)
			if e != 0 && e != syscall.EINTR {
				fmt.Fprintf(os.Stderr, "%s: ppoll: %v\n", d.name, e)
				return
			}
		}
		// Read everything that has arrived (bounded per round).
		for range 512 {
			// recvmsg(2) without the address (syscall.Recvmsg would
			// allocate one per frame).
			msg.SetControllen(len(oob))
			r, _, e := syscall.Syscall(syscall.SYS_RECVMSG, uintptr(d.from), uintptr(unsafe.Pointer(&msg)), syscall.MSG_DONTWAIT)
			if e != 0 {
				if e != syscall.EAGAIN && e != syscall.EINTR {
					fmt.Fprintf(os.Stderr, "%s: read: %v\n", d.name, e)
					return
				}
				break
			}
			n := int(r)
			rx := time.Now()
			if c := int(msg.Controllen); c >= cmsgLen+16 {
				h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
				if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS {
					t := (*syscall.Timespec)(unsafe.Pointer(&oob[cmsgLen]))
					rx = time.Unix(t.Sec, t.Nsec)
				}
			}
			due := rx.Add(d.delay)
			d.in.Add(1)
			frames, err := normalize(buf[:n], alloc, d.scratch[:0])
			d.scratch = frames[:0]
			if err != nil {
				d.bad.Add(1)
				continue
			}
			if len(frames) > 1 {
				d.split.Add(1)
			}
			for _, f := range frames {
				if held == len(q) {
					d.queueDrops.Add(1)
					continue
				}
				q[(head+held)%len(q)] = frame{due: due, data: f}
				held++
			}
		}
		// Send what is due.
		now := time.Now()
		for held > 0 && !q[head].due.After(now) {
			f := &q[head]
			if late := now.Sub(f.due); late > time.Millisecond {
				d.late.Add(1)
				if int64(late) > d.maxLate.Load() {
					d.maxLate.Store(int64(late))
				}
				if late > stallMin {
					d.stall(f.due, now)
				}
			}
			if _, err := syscall.Write(d.to, f.data); err != nil {
				d.sendDrops.Add(1) // ENOBUFS: the qdisc behind us (tbf) dropped it
			} else {
				d.out.Add(1)
			}
			if cap(f.data) == slotSize {
				d.free = append(d.free, f.data)
			}
			f.data = nil
			head = (head + 1) % len(q)
			held--
		}
	}
}

// slotSize is the size of a recycled frame buffer: an MTU-sized frame and
// its virtio-net header.
const slotSize = 2048

// alloc returns an n-byte buffer, recycled when it fits a slot.
func (d *direction) alloc(n int) []byte {
	if n > slotSize {
		return make([]byte, n)
	}
	if k := len(d.free); k > 0 {
		b := d.free[k-1]
		d.free = d.free[:k-1]
		clear(b[:vnetHdrLen])
		return b[:n]
	}
	return make([]byte, n, slotSize)
}

// normalize turns one received frame (virtio-net header + Ethernet frame)
// into frames to send: each with a zero virtio-net header, complete
// checksums, and no GSO.
func normalize(b []byte, alloc func(int) []byte, dst [][]byte) ([][]byte, error) {
	if len(b) < vnetHdrLen+14 {
		return nil, errors.New("short frame")
	}
	flags, gso := b[0], b[1]&^vnetGSOECN
	gsoSize := int(binary.LittleEndian.Uint16(b[4:]))
	csumStart := int(binary.LittleEndian.Uint16(b[6:]))
	csumOff := int(binary.LittleEndian.Uint16(b[8:]))
	eth := b[vnetHdrLen:]
	switch {
	case gso == vnetGSOTCPv4 && gsoSize > 0:
		return segmentTCPv4(eth, gsoSize, alloc, dst)
	case gso != vnetGSONone:
		return nil, fmt.Errorf("GSO type %d not handled", gso)
	}
	out := alloc(vnetHdrLen + len(eth))
	copy(out[vnetHdrLen:], eth)
	if flags&vnetFlagNeedsCsum != 0 {
		f := out[vnetHdrLen:]
		if csumStart+csumOff+2 > len(f) {
			return nil, errors.New("checksum offset outside the frame")
		}
		// The field holds the pseudo-header sum: summing from csum_start
		// over everything and complementing completes it.
		binary.BigEndian.PutUint16(f[csumStart+csumOff:], ^fold(sum(f[csumStart:], 0)))
	}
	return append(dst, out), nil
}

// segmentTCPv4 cuts a TCP/IPv4 GSO frame into segments of mss payload bytes.
func segmentTCPv4(eth []byte, mss int, alloc func(int) []byte, dst [][]byte) ([][]byte, error) {
	if binary.BigEndian.Uint16(eth[12:]) != 0x0800 || len(eth) < 14+20 {
		return nil, errors.New("GSO TCPv4 frame that is not IPv4")
	}
	ip := eth[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl+20 || ip[9] != syscall.IPPROTO_TCP {
		return nil, errors.New("bad IPv4 header")
	}
	tcp := ip[ihl:]
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || len(tcp) < doff {
		return nil, errors.New("bad TCP header")
	}
	hdrs := 14 + ihl + doff
	payload := eth[hdrs:]
	seq := binary.BigEndian.Uint32(tcp[4:])
	id := binary.BigEndian.Uint16(ip[4:])
	out := dst
	for off, i := 0, 0; off < len(payload); off, i = off+mss, i+1 {
		end := min(off+mss, len(payload))
		f := alloc(vnetHdrLen + hdrs + end - off)
		s := f[vnetHdrLen:]
		copy(s, eth[:hdrs])
		copy(s[hdrs:], payload[off:end])
		sip, stcp := s[14:], s[14+ihl:]
		binary.BigEndian.PutUint16(sip[2:], uint16(ihl+doff+end-off))
		binary.BigEndian.PutUint16(sip[4:], id+uint16(i))
		sip[10], sip[11] = 0, 0
		binary.BigEndian.PutUint16(sip[10:], ^fold(sum(sip[:ihl], 0)))
		binary.BigEndian.PutUint32(stcp[4:], seq+uint32(off))
		if end < len(payload) {
			stcp[13] &^= 0x01 | 0x08 // FIN, PSH only on the last segment
		}
		if off > 0 {
			stcp[13] &^= 0x80 // CWR only on the first
		}
		stcp[16], stcp[17] = 0, 0
		tcpLen := doff + end - off
		ps := sum(sip[12:20], 0) + uint32(syscall.IPPROTO_TCP) + uint32(tcpLen)
		binary.BigEndian.PutUint16(stcp[16:], ^fold(sum(stcp[:tcpLen], ps)))
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("GSO frame without payload")
	}
	return out, nil
}

// sum adds b as big-endian 16-bit words to acc (RFC 1071).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
