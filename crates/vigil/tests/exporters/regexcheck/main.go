// regexcheck reads one JSON-quoted regular expression per line and prints, per line, how
// Prometheus 3.x treats it as a label-matcher regex: "ERR <JSON-quoted error>" when Go
// refuses it, else
// "OK " and one 0/1 per probe string (JSON-quoted, one per line, after a line "--").
// Used by crates/vigil/tests/regex_go.rs to compare vigil's regexes with Go's.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"regexp/syntax"
	"strings"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	var probes []string
	var patterns []string
	seenSep := false
	for in.Scan() {
		line := in.Text()
		if line == "--" {
			seenSep = true
			continue
		}
		var s string
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", line)
			os.Exit(2)
		}
		if seenSep {
			probes = append(probes, s)
		} else {
			patterns = append(patterns, s)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, p := range patterns {
		// As Prometheus 3.x's labels.NewFastRegexMatcher: parse the pattern as written,
		// then compile its canonical form anchored.
		parsed, err := syntax.Parse(p, syntax.Perl|syntax.DotNL)
		if err != nil {
			quoted, _ := json.Marshal(err.Error())
			fmt.Fprintln(out, "ERR", string(quoted))
			continue
		}
		re, err := regexp.Compile("^(?s:" + parsed.String() + ")$")
		if err != nil {
			quoted, _ := json.Marshal(err.Error())
			fmt.Fprintln(out, "ERR", string(quoted))
			continue
		}
		var b strings.Builder
		for _, s := range probes {
			if re.MatchString(s) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		fmt.Fprintln(out, "OK", b.String())
	}
}
