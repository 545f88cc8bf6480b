package httpapi

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The diffs of GET …/diff are computed here rather than by a library: no
// diff library the project could use can be stopped, and a line diff's cost
// is not bounded by its input's size (two 512 KiB files of a few hundred
// distinct lines, each repeated and shuffled, took minutes with the
// SequenceMatcher used before, long after the request had timed out). This
// is Myers' O((N+M)·D) algorithm in linear space (the bisection of "An
// O(ND) Difference Algorithm and Its Variations", 1986), after dropping the
// lines that only one side has (they can never match, so a rewritten file
// costs what reading it costs), and it looks at ctx every diffCheckEvery
// steps: a diff that would run past the request's deadline stops there and
// the request gets 503.

// diffCheckEvery is how many steps of work pass between looks at ctx.
const diffCheckEvery = 1 << 12

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// unifiedDiff renders a unified diff (diff -u) of a and b with three lines
// of context, or "" when they are equal. It returns ctx's error, wrapped,
// when ctx ends before the diff is done.
func unifiedDiff(ctx context.Context, a, b []byte, fromFile, toFile string) (string, error) {
	al, bl := diffLines(string(a)), diffLines(string(b))
	ops, err := diffOpcodes(ctx, al, bl)
	if err != nil {
		return "", fmt.Errorf("diff stopped at the request deadline: %w", err)
	}
	var out strings.Builder
	for gi, group := range groupOpcodes(ops, diffContext) {
		if gi == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", fromFile, toFile)
		}
		first, last := group[0], group[len(group)-1]
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", unifiedRange(first.i1, last.i2), unifiedRange(first.j1, last.j2))
		for _, op := range group {
			if op.tag == opEqual {
				for _, line := range al[op.i1:op.i2] {
					out.WriteString(" " + line)
				}
				continue
			}
			for _, line := range al[op.i1:op.i2] {
				out.WriteString("-" + line)
			}
			for _, line := range bl[op.j1:op.j2] {
				out.WriteString("+" + line)
			}
		}
	}
	return out.String(), nil
}

// diffLines splits s into lines that keep their "\n". It adds no empty last
// line for content that ends in a newline; a last line without one gets the
// marker diff(1) prints.
func diffLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		return lines[:len(lines)-1]
	}
	lines[len(lines)-1] += "\n\\ No newline at end of file\n"
	return lines
}

// unifiedRange formats lines [start, stop) as a hunk header range: "3,4",
// "3" for one line, "2,0" for none (after line 2).
func unifiedRange(start, stop int) string {
	begin, n := start+1, stop-start
	switch n {
	case 1:
		return strconv.Itoa(begin)
	case 0:
		begin--
	}
	return strconv.Itoa(begin) + "," + strconv.Itoa(n)
}

// Opcode tags.
const (
	opEqual   = 'e'
	opDelete  = 'd'
	opInsert  = 'i'
	opReplace = 'r'
)

// opcode says that a[i1:i2] and b[j1:j2] are equal, or deleted, inserted
// or replaced.
type opcode struct {
	tag            byte
	i1, i2, j1, j2 int
}

// groupOpcodes splits ops into hunks with n lines of context around each
// change; hunks closer than 2n lines merge. Equal input gives no hunk.
func groupOpcodes(ops []opcode, n int) [][]opcode {
	if len(ops) == 0 {
		return nil
	}
	ops = append([]opcode(nil), ops...)
	if op := &ops[0]; op.tag == opEqual {
		op.i1, op.j1 = max(op.i1, op.i2-n), max(op.j1, op.j2-n)
	}
	if op := &ops[len(ops)-1]; op.tag == opEqual {
		op.i2, op.j2 = min(op.i2, op.i1+n), min(op.j2, op.j1+n)
	}
	var groups [][]opcode
	var group []opcode
	for _, op := range ops {
		if op.tag == opEqual && op.i2-op.i1 > 2*n {
			group = append(group, opcode{opEqual, op.i1, min(op.i2, op.i1+n), op.j1, min(op.j2, op.j1+n)})
			groups = append(groups, group)
			group = nil
			op.i1, op.j1 = max(op.i1, op.i2-n), max(op.j1, op.j2-n)
		}
		group = append(group, op)
	}
	if len(group) > 0 && !(len(group) == 1 && group[0].tag == opEqual) {
		groups = append(groups, group)
	}
	return groups
}

// diffOpcodes returns the opcodes that turn a into b, from a longest
// common subsequence of lines; ctx's error if ctx ends first.
func diffOpcodes(ctx context.Context, a, b []string) ([]opcode, error) {
	common := commonLines(a, b)
	m := &myers{a: common.a, b: common.b, ctx: ctx, next: diffCheckEvery}
	if err := m.compare(0, len(common.a), 0, len(common.b)); err != nil {
		return nil, err
	}
	return common.opcodes(m.matches, len(a), len(b)), nil
}

// sharedLines are the lines of a and b that the other side has too, as
// small integers (equal lines, equal ids), with their line numbers: only
// those can match, so the diff runs on them alone.
type sharedLines struct {
	a, b       []int // line ids
	posA, posB []int // line number of each in a and b
}

func commonLines(a, b []string) sharedLines {
	ids := map[string]int{}
	intern := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	ai, bi := intern(a), intern(b)
	inA, inB := make([]bool, len(ids)), make([]bool, len(ids))
	for _, id := range ai {
		inA[id] = true
	}
	for _, id := range bi {
		inB[id] = true
	}
	var sl sharedLines
	for i, id := range ai {
		if inB[id] {
			sl.a, sl.posA = append(sl.a, id), append(sl.posA, i)
		}
	}
	for j, id := range bi {
		if inA[id] {
			sl.b, sl.posB = append(sl.b, id), append(sl.posB, j)
		}
	}
	return sl
}

// opcodes turns matches, index pairs into sl.a and sl.b in increasing
// order, into the opcodes that turn the whole of a (na lines) into b (nb
// lines): runs of matching lines are equal, what lies between them is
// replaced, deleted or inserted.
func (sl sharedLines) opcodes(matches [][2]int, na, nb int) []opcode {
	var ops []opcode
	i, j := 0, 0
	change := func(i2, j2 int) {
		switch {
		case i < i2 && j < j2:
			ops = append(ops, opcode{opReplace, i, i2, j, j2})
		case i < i2:
			ops = append(ops, opcode{opDelete, i, i2, j, j2})
		case j < j2:
			ops = append(ops, opcode{opInsert, i, i2, j, j2})
		}
	}
	for k := 0; k < len(matches); {
		mi, mj := sl.posA[matches[k][0]], sl.posB[matches[k][1]]
		change(mi, mj)
		run := 1
		for k+run < len(matches) && sl.posA[matches[k+run][0]] == mi+run && sl.posB[matches[k+run][1]] == mj+run {
			run++
		}
		ops = append(ops, opcode{opEqual, mi, mi + run, mj, mj + run})
		i, j, k = mi+run, mj+run, k+run
	}
	change(na, nb)
	return ops
}

// myers finds a longest common subsequence of a and b by bisection,
// appending the matched index pairs to matches in increasing order.
type myers struct {
	a, b    []int
	ctx     context.Context
	work    int
	next    int // work count at which ctx is looked at next
	matches [][2]int
}

// step counts n steps of work and returns ctx's error when it is time to
// look and ctx has ended.
func (m *myers) step(n int) error {
	m.work += n
	if m.work < m.next {
		return nil
	}
	m.next = m.work + diffCheckEvery
	return m.ctx.Err()
}

// compare matches a[alo:ahi] against b[blo:bhi].
func (m *myers) compare(alo, ahi, blo, bhi int) error {
	for alo < ahi && blo < bhi && m.a[alo] == m.b[blo] {
		m.matches = append(m.matches, [2]int{alo, blo})
		alo, blo = alo+1, blo+1
	}
	suffix := 0
	for alo < ahi-suffix && blo < bhi-suffix && m.a[ahi-suffix-1] == m.b[bhi-suffix-1] {
		suffix++
	}
	ahi, bhi = ahi-suffix, bhi-suffix
	if err := m.step(ahi - alo + bhi - blo + 1); err != nil {
		return err
	}
	switch {
	case alo == ahi || blo == bhi:
	case ahi-alo == 1 || bhi-blo == 1:
		m.single(alo, ahi, blo, bhi)
	default:
		x, y, found, err := m.bisect(alo, ahi, blo, bhi)
		if err != nil {
			return err
		}
		if found {
			if err := m.compare(alo, x, blo, y); err != nil {
				return err
			}
			if err := m.compare(x, ahi, y, bhi); err != nil {
				return err
			}
		}
	}
	for k := 0; k < suffix; k++ {
		m.matches = append(m.matches, [2]int{ahi + k, bhi + k})
	}
	return nil
}

// single matches a range of one element against the other range: at the
// element's first occurrence, if any.
func (m *myers) single(alo, ahi, blo, bhi int) {
	if ahi-alo == 1 {
		for j := blo; j < bhi; j++ {
			if m.b[j] == m.a[alo] {
				m.matches = append(m.matches, [2]int{alo, j})
				return
			}
		}
		return
	}
	for i := alo; i < ahi; i++ {
		if m.a[i] == m.b[blo] {
			m.matches = append(m.matches, [2]int{i, blo})
			return
		}
	}
}

// bisect finds where a shortest edit script of a[alo:ahi] into b[blo:bhi]
// crosses its middle, walking from both ends at once; found is false when
// the ranges have nothing in common.
func (m *myers) bisect(alo, ahi, blo, bhi int) (x, y int, found bool, err error) {
	bs := newBisection(m.a[alo:ahi], m.b[blo:bhi])
	for d := 0; d < bs.maxD; d++ {
		if err := m.step(2*d + 1 + bs.walked); err != nil {
			return 0, 0, false, err
		}
		bs.walked = 0
		if x, y, ok := bs.forward(d); ok {
			return alo + x, blo + y, true, nil
		}
		if x, y, ok := bs.reverse(d); ok {
			return alo + x, blo + y, true, nil
		}
	}
	return 0, 0, false, nil
}

// bisection is the state of one bisect: v1[off+k] is the furthest x the
// forward paths reached on diagonal k (x-y), v2 the same for the reverse
// paths from the ends; k…start and k…end narrow the diagonals once a path
// runs off an edge.
type bisection struct {
	a, b             []int
	n, m             int
	maxD, off, delta int
	front            bool // the forward path meets the reverse one (delta is odd)
	v1, v2           []int
	k1start, k1end   int
	k2start, k2end   int
	walked           int // steps along snakes since the last look at ctx
}

func newBisection(a, b []int) *bisection {
	n, m := len(a), len(b)
	maxD := (n + m + 1) / 2
	off := maxD + 1
	bs := &bisection{a: a, b: b, n: n, m: m, maxD: maxD, off: off, delta: n - m,
		v1: make([]int, 2*off+1), v2: make([]int, 2*off+1)}
	for i := range bs.v1 {
		bs.v1[i], bs.v2[i] = -1, -1
	}
	bs.v1[off+1], bs.v2[off+1] = 0, 0
	bs.front = bs.delta%2 != 0
	return bs
}

// forward extends the forward paths by one edit (to d edits) and reports
// where one meets a reverse path, if it does.
func (bs *bisection) forward(d int) (x, y int, met bool) {
	a, b, n, m, v1, v2, off := bs.a, bs.b, bs.n, bs.m, bs.v1, bs.v2, bs.off
	walked := 0
	defer func() { bs.walked += walked }()
	for k1 := -d + bs.k1start; k1 <= d-bs.k1end; k1 += 2 {
		i := off + k1
		var x1 int
		if k1 == -d || k1 != d && v1[i-1] < v1[i+1] {
			x1 = v1[i+1]
		} else {
			x1 = v1[i-1] + 1
		}
		y1 := x1 - k1
		for x1 < n && y1 < m && a[x1] == b[y1] {
			x1, y1, walked = x1+1, y1+1, walked+1
		}
		v1[i] = x1
		switch {
		case x1 > n:
			bs.k1end += 2
		case y1 > m:
			bs.k1start += 2
		case bs.front:
			if k2 := off + bs.delta - k1; k2 >= 0 && k2 < len(v2) && v2[k2] != -1 && x1 >= n-v2[k2] {
				return x1, y1, true
			}
		}
	}
	return 0, 0, false
}

// reverse extends the reverse paths by one edit and reports where one
// meets a forward path, if it does.
func (bs *bisection) reverse(d int) (x, y int, met bool) {
	a, b, n, m, v1, v2, off := bs.a, bs.b, bs.n, bs.m, bs.v1, bs.v2, bs.off
	walked := 0
	defer func() { bs.walked += walked }()
	for k2 := -d + bs.k2start; k2 <= d-bs.k2end; k2 += 2 {
		i := off + k2
		var x2 int
		if k2 == -d || k2 != d && v2[i-1] < v2[i+1] {
			x2 = v2[i+1]
		} else {
			x2 = v2[i-1] + 1
		}
		y2 := x2 - k2
		for x2 < n && y2 < m && a[n-x2-1] == b[m-y2-1] {
			x2, y2, walked = x2+1, y2+1, walked+1
		}
		v2[i] = x2
		switch {
		case x2 > n:
			bs.k2end += 2
		case y2 > m:
			bs.k2start += 2
		case !bs.front:
			if k1 := off + bs.delta - k2; k1 >= 0 && k1 < len(v1) && v1[k1] != -1 {
				x1 := v1[k1]
				y1 := off + x1 - k1
				if x1 >= n-x2 {
					return x1, y1, true
				}
			}
		}
	}
	return 0, 0, false
}
