package httpapi

import "testing"

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{
			name: "trailing newline adds no phantom line",
			a:    "a\nb\n", b: "a\nc\n",
			want: "--- x\n+++ y\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
		},
		{
			name: "missing final newline is marked",
			a:    "a\nb", b: "a\nb\n",
			want: "--- x\n+++ y\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
		},
		{
			name: "added file",
			a:    "", b: "k: v\n",
			want: "--- x\n+++ y\n@@ -0,0 +1 @@\n+k: v\n",
		},
		{
			name: "equal content has an empty diff",
			a:    "same\n", b: "same\n",
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unifiedDiff([]byte(tt.a), []byte(tt.b), "x", "y")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("diff =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
