package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// splitArgs splits s into words as a POSIX shell would for plain words,
// 'single' and "double" quotes and backslash escapes; nothing is expanded.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("split arguments: trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("split arguments: unterminated ' at byte %d", i)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte(`"\$`+"`", s[j+1]) >= 0 {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j == len(s) {
				return nil, fmt.Errorf("split arguments: unterminated \" at byte %d", i)
			}
			i = j
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// parseTools parses -tools: a comma-separated subset of allTools, kept in
// allTools' order.
func parseTools(s string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(s, ",") {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if !slices.Contains(allTools, t) {
			return nil, fmt.Errorf("-tools: unknown tool %q (want some of %s)", t, strings.Join(allTools, ","))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-tools: empty (want some of %s)", strings.Join(allTools, ","))
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(allTools, a) - slices.Index(allTools, b) })
	return out, nil
}
