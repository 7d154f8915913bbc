// Package sluice holds the files the sluice binary carries with it.
package sluice

import _ "embed"

// SampleMP4 is the demo sample: 12 s of test pattern, two H.264 bitrates and
// AAC audio (made by scripts/make-sample.sh).
//
//go:embed testdata/sample/sample.mp4
var SampleMP4 []byte
