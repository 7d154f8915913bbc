package urls

import "testing"

// FuzzSmoothFragment checks the Smooth fragment URL parser never panics.
func FuzzSmoothFragment(f *testing.F) {
	f.Add("QualityLevels(800000)/Fragments(video=20000000)")
	f.Fuzz(func(t *testing.T, s string) {
		SmoothFragment(s)
		Stream(s)
		Split(s)
	})
}
