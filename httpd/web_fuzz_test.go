package httpd

import (
	"strings"
	"testing"
)

// FuzzAcceptsGzip: any Accept-Encoding value is judged without a panic,
// and gzip is never chosen for a value that does not name it.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0", "GZIP ; q=0.5", "identity", "*", ",,;;", "gzip;q=0 , gzip"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := acceptsGzip([]byte(s))
		if got && !strings.Contains(strings.ToLower(s), "gzip") {
			t.Errorf("acceptsGzip(%q) = true", s)
		}
	})
}

func TestAcceptsGzip(t *testing.T) {
	for s, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip": true, "gzip;q=0": false, "gzip; q=0": false, "Gzip;q=0.5": true,
		"br": false, "x-gzip": false, "gzip;q=0, br": false,
	} {
		if got := acceptsGzip([]byte(s)); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", s, got, want)
		}
	}
}
