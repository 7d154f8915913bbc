// Package texttrack converts timed text between the forms Sluice meets it
// in: WebVTT-in-MP4 samples (ISO/IEC 14496-30 wvtt, as encoders push them
// and as the store keeps them), WebVTT text (the HLS subtitle segments the
// origin and the senders serve, and the side-car .vtt files `sluice import`
// takes), and the paragraphs of TTML documents (side-car .ttml files).
//
// Every parser here is bounded: input larger than MaxInput, or with more
// than MaxCues cues, is refused with ErrTooLarge before it costs more.
package texttrack
