package mpdschema

import (
	"strings"
	"testing"
)

const good = `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" minBufferTime="PT2S" mediaPresentationDuration="PT4S">
  <BaseURL serviceLocation="a">http://a/</BaseURL>
  <Location>/m.mpd</Location>
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <Representation id="v" bandwidth="1000" codecs="avc1.64001F">
        <SegmentList timescale="1000">
          <Initialization sourceURL="v/init.mp4"></Initialization>
          <SegmentTimeline><S t="0" d="2000" r="1"></S></SegmentTimeline>
          <SegmentURL media="v/0.m4s"></SegmentURL>
          <SegmentURL media="v/2000.m4s"></SegmentURL>
        </SegmentList>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2026-01-01T00:00:00Z"></UTCTiming>
  <ContentSteering defaultServiceLocation="a">http://s/steer.json</ContentSteering>
</MPD>`

// TestCheck: the validator accepts a well-ordered MPD and reports each
// kind of violation it is there to find.
func TestCheck(t *testing.T) {
	if err := Check([]byte(good)); err != nil {
		t.Fatalf("good MPD: %v", err)
	}
	for name, c := range map[string]struct{ from, to, want string }{
		"SegmentURL before Initialization (dash-mpd's order)": {
			`<Initialization sourceURL="v/init.mp4"></Initialization>
          <SegmentTimeline><S t="0" d="2000" r="1"></S></SegmentTimeline>
          <SegmentURL media="v/0.m4s"></SegmentURL>
          <SegmentURL media="v/2000.m4s"></SegmentURL>`,
			`<SegmentURL media="v/0.m4s"></SegmentURL>
          <SegmentURL media="v/2000.m4s"></SegmentURL>
          <SegmentTimeline><S t="0" d="2000" r="1"></S></SegmentTimeline>
          <Initialization sourceURL="v/init.mp4"></Initialization>`,
			"SegmentTimeline after SegmentURL"},
		"Location before BaseURL": {`<BaseURL serviceLocation="a">http://a/</BaseURL>
  <Location>/m.mpd</Location>`, `<Location>/m.mpd</Location>
  <BaseURL serviceLocation="a">http://a/</BaseURL>`, "BaseURL after Location"},
		"no bandwidth":              {` bandwidth="1000"`, ``, "required attribute bandwidth"},
		"no minBufferTime":          {` minBufferTime="PT2S"`, ``, "required attribute minBufferTime"},
		"S without d":               {` d="2000"`, ``, "required attribute d"},
		"descriptor without scheme": {` schemeIdUri="urn:mpeg:dash:utc:direct:2014"`, ``, "required attribute schemeIdUri"},
		"unknown element":           {`<Location>`, `<Locatio>/x</Locatio><Location>`, "not in the order table"},
		"two timelines":             {`<SegmentURL media="v/0.m4s">`, `<SegmentTimeline><S d="1"></S></SegmentTimeline><SegmentURL media="v/0.m4s">`, "more than one SegmentTimeline"},
		"steering before UTCTiming": {`<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2026-01-01T00:00:00Z"></UTCTiming>
  <ContentSteering defaultServiceLocation="a">http://s/steer.json</ContentSteering>`, `<ContentSteering defaultServiceLocation="a">http://s/steer.json</ContentSteering>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2026-01-01T00:00:00Z"></UTCTiming>`, "UTCTiming after ContentSteering"},
		"no Period": {`<Period id="0" start="PT0S">`, `<X>`, ""},
		"not XML":   {`</MPD>`, ``, "not well-formed"},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if name == "no Period" {
			bad = strings.Replace(bad, `</Period>`, `</X>`, 1)
		}
		err := Check([]byte(bad))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
