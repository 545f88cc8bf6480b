package zkversion

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{in: "3.9.3", want: Version{3, 9, 3}},
		{in: "3.9.3-1+deb13u1", want: Version{3, 9, 3}},
		{in: "3.8.0-11+deb12u2", want: Version{3, 8, 0}},
		{in: "Zookeeper version: 3.9.3-${mvngit.commit.id}, built on 2026-03-08 16:19 UTC", want: Version{3, 9, 3}},
		{in: "zookeeper-3.8.0.jar", want: Version{3, 8, 0}},
		{in: "3.10.0", want: Version{3, 10, 0}},
		{in: "", wantErr: true},
		{in: "3.9", wantErr: true},
		{in: "srvr is not executed because it is not in the whitelist.", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestKnownDataLoss(t *testing.T) {
	tests := []struct {
		v   Version
		bad bool
	}{
		{Version{3, 4, 14}, true},
		{Version{3, 7, 2}, true},
		{Version{3, 8, 0}, true}, // Debian bookworm
		{Version{3, 8, 3}, true},
		{Version{3, 8, 4}, false},
		{Version{3, 8, 6}, false},
		{Version{3, 9, 0}, true},
		{Version{3, 9, 1}, true},
		{Version{3, 9, 2}, false},
		{Version{3, 9, 3}, false}, // Debian trixie, what make zookeeper installs
		{Version{3, 10, 0}, false},
		{Version{4, 0, 0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.v.String(), func(t *testing.T) {
			reason, bad := KnownDataLoss(tt.v)
			if bad != tt.bad {
				t.Fatalf("KnownDataLoss(%v) = %v (%q), want %v", tt.v, bad, reason, tt.bad)
			}
			if bad && reason == "" {
				t.Fatalf("KnownDataLoss(%v) gives no reason", tt.v)
			}
		})
	}
}
