package media

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// UUIDs of the Smooth Streaming boxes (MS-SSTR).
const (
	UUIDLiveServerManifest = "a5d40b30-e814-11dd-ba2f-0800200c9a66"
	UUIDStreamManifest     = "3c2fe51b-efee-40a3-ae81-5300199dc348"
	UUIDTfxd               = "6d1d9b05-42d5-44e6-80e2-141daff757b2"
	UUIDTfrf               = "d4807ef2-ca39-4695-8e54-26cb9e46a79f"
)

// UUIDOf returns the user type of a raw uuid box in canonical form, or "".
func UUIDOf(raw []byte) string {
	p := payload(raw)
	if len(raw) < 8 || string(raw[4:8]) != "uuid" || len(p) < 16 {
		return ""
	}
	u := p[:16]
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// SmilTrack is one track entry of a Smooth live server manifest.
type SmilTrack struct {
	Kind    string
	Bitrate int
	Params  map[string]string
}

func (s SmilTrack) apply(ti *TrackInfo) {
	if s.Bitrate > 0 {
		ti.Bitrate = s.Bitrate
	}
	p := s.Params
	if v := p["trackName"]; v != "" {
		ti.Name = v
	}
	if v := p["FourCC"]; v != "" {
		ti.FourCC = v
	}
	if v := p["CodecPrivateData"]; v != "" && ti.CodecPrivateData == "" {
		ti.CodecPrivateData = strings.ToUpper(v)
	}
	if v := p["systemLanguage"]; v != "" && v != "und" && ti.Language == "" {
		ti.Language = v
	}
	atoi := func(k string, dst *int) {
		if n, err := strconv.Atoi(p[k]); err == nil && n > 0 {
			*dst = n
		}
	}
	atoi("MaxWidth", &ti.Width)
	atoi("MaxHeight", &ti.Height)
	atoi("SamplingRate", &ti.SampleRate)
	atoi("Channels", &ti.Channels)
	atoi("BitsPerSample", &ti.BitsPerSample)
}

type smilDoc struct {
	XMLName xml.Name `xml:"smil"`
	Body    struct {
		Switch struct {
			Items []smilItem `xml:",any"`
		} `xml:"switch"`
	} `xml:"body"`
}

type smilItem struct {
	XMLName       xml.Name
	SystemBitrate string `xml:"systemBitrate,attr"`
	Params        []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"param"`
}

// maxSmil bounds the manifest document; real ones are a few kilobytes.
const maxSmil = 1 << 20

// ParseLiveServerManifest decodes the SMIL document of a LiveServerManifestBox
// (MS-SSTR 2.2.7.3) into its track entries, keyed by trackID.
func ParseLiveServerManifest(raw []byte) (map[uint32]SmilTrack, error) {
	p := payload(raw)
	if len(p) < 20 {
		return nil, fmt.Errorf("live server manifest box too short (%d bytes)", len(raw))
	}
	doc := p[20:]
	if len(doc) > maxSmil {
		return nil, fmt.Errorf("live server manifest of %d bytes exceeds %d", len(doc), maxSmil)
	}
	doc = bytes.TrimRight(doc, "\x00")
	var d smilDoc
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = false
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("live server manifest SMIL: %w", err)
	}
	out := make(map[uint32]SmilTrack)
	for _, it := range d.Body.Switch.Items {
		st := SmilTrack{Kind: it.XMLName.Local, Params: map[string]string{}}
		st.Bitrate, _ = strconv.Atoi(it.SystemBitrate)
		for _, p := range it.Params {
			st.Params[p.Name] = p.Value
		}
		id, err := strconv.ParseUint(st.Params["trackID"], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("live server manifest: %s entry without a numeric trackID", st.Kind)
		}
		out[uint32(id)] = st
	}
	return out, nil
}
