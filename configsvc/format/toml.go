package format

import (
	"fmt"

	"github.com/sluicehq/sluice/configsvc"
)

// MaxTOMLDepth bounds how deep a TOML key sits: the parts of its table
// header and of its dotted name, plus those of the keys of the inline
// tables around it. It also bounds how deep arrays nest. The TOML decoder
// builds the full name of every prefix of a key, so its cost for a key
// grows with the square of its depth: a 16 KiB line of `a.a.a.….a = 1`
// allocated gigabytes.
const MaxTOMLDepth = 8

// checkTOMLDepth refuses content nesting deeper than MaxTOMLDepth, before
// the decoder sees it. It reads the bytes once, skipping strings and
// comments, and counts conservatively: a float or date in a key position
// of a malformed line may count a level more, never less. Syntax errors
// are left to the decoder.
func checkTOMLDepth(file string, content []byte) error {
	type frame struct {
		depth  int  // depth of the keys in it
		inline bool // an inline table (keys), else an array (values)
	}
	var (
		stack     []frame
		header    int  // depth of the current [table]
		dots      int  // dots of the key being read
		inValue   bool // after '=' until the value ends
		valDepth  int  // depth of the key whose value is being read
		arrays    int  // arrays open
		lineStart = true
	)
	tooDeep := func(i int, what string, depth int) error {
		line, col := position(content, i)
		return &configsvc.ParseError{File: file, Format: configsvc.FormatTOML, Line: line, Column: col,
			Msg: fmt.Sprintf("%s %d levels deep, over the limit of %d", what, depth, MaxTOMLDepth)}
	}
	const keyDeep = "key nests (table header, dotted name and enclosing inline tables)"
	keyDepth := func() int {
		if len(stack) > 0 && stack[len(stack)-1].inline {
			return stack[len(stack)-1].depth
		}
		return header
	}
	for i := 0; i < len(content); i++ {
		c := content[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			continue
		case c == '\n':
			if len(stack) == 0 {
				inValue, dots = false, 0
			}
			lineStart = true
			continue
		case c == '#':
			for i+1 < len(content) && content[i+1] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			i = skipTOMLString(content, i)
		case lineStart && len(stack) == 0 && !inValue && c == '[':
			start := i
			parts := 1
			for i++; i < len(content) && content[i] != ']' && content[i] != '\n'; i++ {
				switch content[i] {
				case '.':
					parts++
				case '"', '\'':
					i = skipTOMLString(content, i)
				}
			}
			if parts > MaxTOMLDepth {
				return tooDeep(start, keyDeep, parts)
			}
			header = parts
			for i+1 < len(content) && content[i+1] == ']' {
				i++
			}
		case !inValue && c == '.':
			dots++
		case !inValue && c == '=':
			d := keyDepth() + dots + 1
			if d > MaxTOMLDepth {
				return tooDeep(i, keyDeep, d)
			}
			inValue, valDepth, dots = true, d, 0
		case inValue && c == '{':
			stack = append(stack, frame{depth: valDepth, inline: true})
			inValue, dots = false, 0
		case inValue && c == '[':
			if arrays++; arrays > MaxTOMLDepth {
				return tooDeep(i, "arrays nest", arrays)
			}
			stack = append(stack, frame{depth: valDepth})
		case c == '}' || c == ']':
			if top := len(stack) - 1; top >= 0 && stack[top].inline == (c == '}') {
				if !stack[top].inline {
					arrays--
				}
				stack = stack[:top]
			}
			inValue = true
			if len(stack) > 0 && !stack[len(stack)-1].inline {
				valDepth = stack[len(stack)-1].depth
			}
		case c == ',':
			if len(stack) > 0 && stack[len(stack)-1].inline {
				inValue, dots = false, 0
			} else if len(stack) > 0 {
				valDepth = stack[len(stack)-1].depth
			}
		}
		lineStart = false
	}
	return nil
}

// skipTOMLString returns the index of the last byte of the string that
// starts at content[i] (a quote): basic or literal, single- or multi-line.
// An unterminated string runs to the end.
func skipTOMLString(content []byte, i int) int {
	q := content[i]
	triple := i+2 < len(content) && content[i+1] == q && content[i+2] == q
	if triple {
		i += 2
	}
	for i++; i < len(content); i++ {
		switch c := content[i]; {
		case c == '\\' && q == '"':
			i++
		case c == '\n' && !triple:
			return i - 1
		case c == q:
			if !triple {
				return i
			}
			if i+2 < len(content) && content[i+1] == q && content[i+2] == q {
				// A closing """ may be followed by up to two more quotes
				// that belong to the string.
				i += 2
				for i+1 < len(content) && content[i+1] == q {
					i++
				}
				return i
			}
		}
	}
	return len(content) - 1
}
