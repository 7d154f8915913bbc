package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// probeSize is the size of a probe and of its echo: small, like a game or
// voice packet.
const probeSize = 64

// runEcho is `pacebench echo -listen ADDR -duration D`: a TCP echo server
// for the competing flow. Each connection gets its probes echoed back
// unchanged. It stops after the duration.
func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":9000", "address to listen on")
	duration := fs.Duration("duration", 30*time.Minute, "stop after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	fmt.Fprintf(stdout, "echo listening on %s\n", ln.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			buf := make([]byte, probeSize)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
	}
}

// runPing is `pacebench ping -addr ADDR -interval I -duration D -out FILE`:
// the competing latency-sensitive flow. Over one TCP connection (no Nagle)
// it sends a probe every interval and writes one line per echo:
// "<send time, Unix ns> <round-trip time, ns>". Sending does not wait for
// echoes, so a delayed echo delays none of the later probes' sends.
func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "echo server address")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between probes")
	duration := fs.Duration("duration", time.Minute, "stop after this long")
	out := fs.String("out", "", "output file (default stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("ping: want -addr")
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()

	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetNoDelay(true)

	var mu sync.Mutex
	sent := map[uint64]time.Time{}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, probeSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				done <- err
				return
			}
			now := time.Now()
			seq := binary.BigEndian.Uint64(buf)
			mu.Lock()
			t0, ok := sent[seq]
			delete(sent, seq)
			mu.Unlock()
			if ok {
				fmt.Fprintf(bw, "%d %d\n", t0.UnixNano(), now.Sub(t0).Nanoseconds())
			}
		}
	}()
	t := time.NewTicker(*interval)
	defer t.Stop()
	buf := make([]byte, probeSize)
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			// Give echoes in flight a moment, then stop reading.
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			<-done
			return nil
		case err := <-done:
			return fmt.Errorf("ping: connection: %w", err)
		case <-t.C:
		}
		binary.BigEndian.PutUint64(buf, seq)
		mu.Lock()
		sent[seq] = time.Now()
		mu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("ping: write: %w", err)
		}
	}
}
