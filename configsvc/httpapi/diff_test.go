package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

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
			got, err := unifiedDiff(context.Background(), []byte(tt.a), []byte(tt.b), "x", "y")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("diff =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// lcsLen is the textbook O(N·M) longest common subsequence length.
func lcsLen(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// TestDiffOpcodesAreMinimal checks on random inputs that the opcodes turn
// a into b and keep a longest common subsequence of lines.
func TestDiffOpcodesAreMinimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 2000; n++ {
		gen := func() []string {
			out := make([]string, rng.IntN(30))
			for i := range out {
				out[i] = string(rune('a' + rng.IntN(1+n%8)))
			}
			return out
		}
		a, b := gen(), gen()
		ops, err := diffOpcodes(context.Background(), a, b)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		equal := 0
		ai, bj := 0, 0
		for _, op := range ops {
			if op.i1 != ai || op.j1 != bj {
				t.Fatalf("%q → %q: opcodes not contiguous: %+v", a, b, ops)
			}
			if op.tag == opEqual {
				if !slices.Equal(a[op.i1:op.i2], b[op.j1:op.j2]) {
					t.Fatalf("%q → %q: equal opcode on different lines: %+v", a, b, op)
				}
				equal += op.i2 - op.i1
			}
			got = append(got, b[op.j1:op.j2]...)
			ai, bj = op.i2, op.j2
		}
		if ai != len(a) || bj != len(b) || !slices.Equal(got, b) {
			t.Fatalf("%q → %q: opcodes %+v do not rebuild b", a, b, ops)
		}
		if want := lcsLen(a, b); equal != want {
			t.Fatalf("%q → %q: %d lines kept, a longest common subsequence has %d", a, b, equal, want)
		}
	}
}

// pathologicalPair returns two files of at most the file limit that make a
// line diff do the most work: a few hundred distinct lines, each repeated
// and shuffled differently on each side.
func pathologicalPair() (a, b []byte) {
	var sa, sb strings.Builder
	for i := 0; max(sa.Len(), sb.Len()) < configsvc.MaxFileSize-16; i++ {
		fmt.Fprintf(&sa, "%d\n", i%500)
		fmt.Fprintf(&sb, "%d\n", (i*7+3)%500)
	}
	return []byte(sa.String()), []byte(sb.String())
}

// TestAttackDiffStopsAtDeadline: a diff of two 512 KiB files with
// pathological content ran for minutes after its request had timed out;
// now it stops when its context does.
func TestAttackDiffStopsAtDeadline(t *testing.T) {
	a, b := pathologicalPair()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := unifiedDiff(ctx, a, b, "a", "b")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if took > time.Second {
		t.Fatalf("the diff ran %v, long past its 200ms deadline", took)
	}
}

func TestDiffOfRewrittenFileIsQuick(t *testing.T) {
	var sa, sb strings.Builder
	for i := 0; max(sa.Len(), sb.Len()) < configsvc.MaxFileSize-32; i++ {
		fmt.Fprintf(&sa, "old line %d\n", i)
		fmt.Fprintf(&sb, "new line %d\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := unifiedDiff(ctx, []byte(sa.String()), []byte(sb.String()), "a", "b")
	if err != nil || !strings.HasPrefix(d, "--- a\n+++ b\n@@ -1,") {
		t.Fatalf("rewrite diff: %v, %.60q", err, d)
	}
}
