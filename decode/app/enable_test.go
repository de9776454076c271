package app

import "testing"

// TestEnableSwitchesDetectors: a detector switched off leaves its flows to
// the port guess; the others still run.
func TestEnableSwitchesDetectors(t *testing.T) {
	req := []byte("GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\n\r\n")
	for _, tc := range []struct {
		enable    []string
		wantGuess bool
	}{
		{nil, false},
		{[]string{"dns", "tls"}, true},
		{[]string{"HTTP"}, false},
	} {
		p := NewPool(4)
		if tc.enable != nil {
			if unknown := p.Enable(tc.enable); len(unknown) != 0 {
				t.Fatalf("unknown names %v", unknown)
			}
		}
		var s State
		s.Feed(p, req, true, 6, 40000, 80)
		if s.Proto != HTTP || s.Guess != tc.wantGuess {
			t.Errorf("enable %v: proto %v guess %v, want HTTP guess %v", tc.enable, s.Proto, s.Guess, tc.wantGuess)
		}
	}
	if unknown := NewPool(1).Enable([]string{"smb", "dns"}); len(unknown) != 1 || unknown[0] != "smb" {
		t.Errorf("unknown = %v, want [smb]", unknown)
	}
}
