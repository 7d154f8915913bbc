// Package pacing lets a player set the TCP pacing of its own media
// responses, and reports what the server did (docs/pacing.md).
//
// Side channel in: CMCD (CTA-5004) from the CMCD-Object, CMCD-Request,
// CMCD-Session and CMCD-Status headers or the CMCD= query argument (rtp,
// bl, br, d, su, bs, nor, sid, cid, mtp, ot, …), and the Sluice-Pacing
// header, an RFC 8941 dictionary with rate (kbit/s), burst (segments) and
// gap (ms), each optionally per TCP phase (parameters ss, ca, rec), or off.
// Precedence: urgent requests (su, bs, bl at or below min_buffer) are
// never paced; then explicit specification > CMCD rtp > server estimate > none.
// Malformed input is ignored with a log line; rates are clamped.
//
// Mechanism: before the response body the Middleware sets
// SO_MAX_PACING_RATE on the connection's socket (reached through
// ConnContext and SyscallConn, also beneath TLS) and TCP_NOTSENT_LOWAT;
// each request on a keep-alive connection sets its own value and a request
// without one restores the default (unlimited). The burst size the kernel
// really uses (about 1 ms of data, at least 2 segments) is computed and
// reported rather than a smaller requested one.
//
// Side channel out: CMSD-Dynamic (CTA-5006) with etp, rtt and the custom
// keys com.sluice-src, -rate, -burst, -gap, -phase, -loss, -cpu, -hicpu and
// -cpuburst; StaticHeader builds CMSD-Static for the origin.
//
// Without a player specification (mode server or both) the server paces at
// a fraction of its own per-connection bottleneck estimate: delivered
// segments × MSS over the longest path-limited stretch (at least 200 ms and
// 4 RTT of busy time, not in slow start, not application-limited) of
// responses of at least 256 KiB; pace-limited responses only raise it. The
// first response of a connection goes unpaced; periodic probes are paced at
// 1.25 × the estimate for 250 ms; small objects (CMCD br × d) at 8 × br;
// nothing below 1.2 × br. Under high CPU load it can raise the kernel's
// minimum burst (tcp_min_tso_segs) while keeping the rates.
package pacing
