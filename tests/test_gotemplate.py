"""Tests for dockyard.cli.gotemplate (Go text/template + docker --format).

GO_CASES and TAB_CASES hold expected outputs produced by running the real Go
text/template / text/tabwriter (go1.19, with docker/cli's template functions
registered) on the same templates and data; data was fed to Go as decoded
JSON (map[string]interface{}), which is why chained type names read
"interface {}".  The remaining tests cover behaviour Go cannot show from
JSON data (objects with methods, dict order in json, docker formatter
conventions, newer-Go features) and are derived from Go's and docker/cli's
documented semantics.
"""

import os
import subprocess
import sys

import pytest

from dockyard.cli import gotemplate as gt
from dockyard.cli.gotemplate import (
    FormatError,
    TemplateError,
    format_one,
    format_rows,
    parse,
    render,
    tabwrite,
)

D1 = {'Name': 'web',
 'Id': 'abc123',
 'Num': 42,
 'F': 0.5,
 'Big': 1000000.0,
 'T': True,
 'Fa': False,
 'Nil': None,
 'L': ['a', 'b', 'c'],
 'E': [],
 'M': {'z': 1, 'a': 'x', 'm': None},
 'EM': {},
 'S': {'A': {'B': {'C': 'deep'}}},
 'Ports': {'80/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '8080'}]},
 'Labels': {'com.example.b': '2', 'com.example.a': '1'},
 'Neg': -7,
 'Str': 'héllo wörld',
 'Zero': 0,
 'EmptyS': ''}

D2 = {'A': {'B': 1}, 'L': [1, None, 'x'], 'N': None, 'Cfg': {'Env': ['A=1', 'B=2'], 'Cmd': None}}

# (template, data, missingkey, expected output, expected error)
GO_CASES = [
    ('{{.Name}}', 'D1', 'default', 'web', None),
    ('{{.Id}}-{{.Num}}', 'D1', 'default', 'abc123-42', None),
    ('{{.S.A.B.C}}', 'D1', 'default', 'deep', None),
    ('{{.S.A}}', 'D1', 'default', 'map[B:map[C:deep]]', None),
    ('{{.}}', 'D1', 'default', 'map[Big:1e+06 E:[] EM:map[] EmptyS: F:0.5 Fa:false Id:abc123 L:[a b c] Labels:map[com.example.a:1 com.example.b:2] M:map[a:x m:<nil> z:1] Name:web Neg:-7 Nil:<nil> Num:42 Ports:map[80/tcp:[map[HostIp:0.0.0.0 HostPort:8080]]] S:map[A:map[B:map[C:deep]]] Str:héllo wörld T:true Zero:0]', None),
    ('{{.Missing}}', 'D1', 'default', '<no value>', None),
    ('{{.Missing.Deeper}}', 'D1', 'default', '<no value>', None),
    ('{{.Nil}}', 'D1', 'default', '<no value>', None),
    ('{{.Nil.X}}', 'D1', 'default', '', 'template: :1:6: executing "" at <.Nil.X>: nil pointer evaluating interface {}.X'),
    ('{{.Name.X}}', 'D1', 'default', '', 'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in type interface {}'),
    ('{{.L}}', 'D1', 'default', '[a b c]', None),
    ('{{.E}}', 'D1', 'default', '[]', None),
    ('{{.M}}', 'D1', 'default', 'map[a:x m:<nil> z:1]', None),
    ('{{.EM}}', 'D1', 'default', 'map[]', None),
    ('{{.F}} {{.Big}} {{.T}} {{.Fa}} {{.Neg}}', 'D1', 'default', '0.5 1e+06 true false -7', None),
    ('{{.M.z}} {{.M.a}} {{.M.m}} {{.M.q}}', 'D1', 'default', '1 x <no value> <no value>', None),
    ('{{$}}', 'D1', 'default', 'map[Big:1e+06 E:[] EM:map[] EmptyS: F:0.5 Fa:false Id:abc123 L:[a b c] Labels:map[com.example.a:1 com.example.b:2] M:map[a:x m:<nil> z:1] Name:web Neg:-7 Nil:<nil> Num:42 Ports:map[80/tcp:[map[HostIp:0.0.0.0 HostPort:8080]]] S:map[A:map[B:map[C:deep]]] Str:héllo wörld T:true Zero:0]', None),
    ('{{$.Name}}', 'D1', 'default', 'web', None),
    ('{{.Labels}}', 'D1', 'default', 'map[com.example.a:1 com.example.b:2]', None),
    ('{{index .M "z"}}', 'D1', 'default', '1', None),
    ('{{index .L 1}}', 'D1', 'default', 'b', None),
    ('{{index .L 5}}', 'D1', 'default', '', 'template: :1:2: executing "" at <index .L 5>: error calling index: index out of range: 5'),
    ('{{index .Ports "80/tcp" 0 "HostPort"}}', 'D1', 'default', '8080', None),
    ('{{(index .Ports "80/tcp" 0).HostPort}}', 'D1', 'default', '8080', None),
    ('{{index .M "nope"}}', 'D1', 'default', '<no value>', None),
    ('{{index .Labels "com.example.a"}}', 'D1', 'default', '1', None),
    ('{{index .Nil 1}}', 'D1', 'default', '', 'template: :1:2: executing "" at <index .Nil 1>: error calling index: index of untyped nil'),
    ('{{index .Num 1}}', 'D1', 'default', '', 'template: :1:2: executing "" at <index .Num 1>: error calling index: can\'t index item of type int'),
    ('{{index .L}}', 'D1', 'default', '[a b c]', None),
    ('{{.Name | printf "%s!"}}', 'D1', 'default', 'web!', None),
    ('{{.Name | len}}', 'D1', 'default', '3', None),
    ('{{.L | len | printf "%d items"}}', 'D1', 'default', '3 items', None),
    ('{{"x" | printf "%s-%s" "y"}}', 'D1', 'default', 'y-x', None),
    ('{{(.Name)}}', 'D1', 'default', 'web', None),
    ('{{(printf "%s" .Name) | len}}', 'D1', 'default', '3', None),
    ('{{$x := .Name}}{{$x}}', 'D1', 'default', 'web', None),
    ('{{$x := 1}}{{$x = 2}}{{$x}}', 'D1', 'default', '2', None),
    ('{{$x := .S.A}}{{$x.B.C}}', 'D1', 'default', 'deep', None),
    ('{{with $x := .Name}}{{$x}}{{end}}', 'D1', 'default', 'web', None),
    ('{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}', 'D1', 'default', '2', None),
    ('{{range $i, $v := .L}}{{$i}}:{{$v}} {{end}}', 'D1', 'default', '0:a 1:b 2:c ', None),
    ('{{range $v := .L}}{{$v}}{{end}}', 'D1', 'default', 'abc', None),
    ('{{range $k, $v := .M}}{{$k}}={{$v}};{{end}}', 'D1', 'default', 'a=x;m=<no value>;z=1;', None),
    ('{{range .M}}{{.}};{{end}}', 'D1', 'default', 'x;<no value>;1;', None),
    ('{{range $i, $v := .L}}{{$.Name}}{{end}}', 'D1', 'default', 'webwebweb', None),
    ('{{$x := 5}}{{range .L}}{{$x}}{{end}}', 'D1', 'default', '555', None),
    ('{{if .T}}yes{{end}}', 'D1', 'default', 'yes', None),
    ('{{if .Fa}}yes{{else}}no{{end}}', 'D1', 'default', 'no', None),
    ('{{if .Missing}}y{{else}}n{{end}}', 'D1', 'default', 'n', None),
    ('{{if .E}}y{{else}}n{{end}}', 'D1', 'default', 'n', None),
    ('{{if .Zero}}a{{else if .EmptyS}}b{{else if .Num}}c{{else}}d{{end}}', 'D1', 'default', 'c', None),
    ('{{if .Nil}}a{{else if eq .Num 42}}b{{end}}', 'D1', 'default', 'b', None),
    ('{{if and .T .Num}}x{{end}}', 'D1', 'default', 'x', None),
    ('{{if or .Fa .Zero}}x{{else}}y{{end}}', 'D1', 'default', 'y', None),
    ('{{if not .Fa}}x{{end}}', 'D1', 'default', 'x', None),
    ('{{if .EM}}x{{else}}y{{end}}', 'D1', 'default', 'y', None),
    ('{{if .S}}x{{end}}', 'D1', 'default', 'x', None),
    ('{{range .L}}[{{.}}]{{end}}', 'D1', 'default', '[a][b][c]', None),
    ('{{range .E}}x{{else}}empty{{end}}', 'D1', 'default', 'empty', None),
    ('{{range .Missing}}x{{else}}none{{end}}', 'D1', 'default', 'none', None),
    ('{{range .Nil}}x{{end}}', 'D1', 'default', '', None),
    ('{{range .Name}}x{{end}}', 'D1', 'default', '', 'template: :1:8: executing "" at <.Name>: range can\'t iterate over web'),
    ('{{range .L}}{{if eq . "b"}}{{continue}}{{end}}{{.}}{{end}}', 'D1', 'default', 'ac', None),
    ('{{range .L}}{{if eq . "b"}}{{break}}{{end}}{{.}}{{end}}', 'D1', 'default', 'a', None),
    ('{{range $i, $e := .Ports}}{{$i}} {{range $e}}{{.HostIp}}:{{.HostPort}}{{end}}{{end}}', 'D1', 'default', '80/tcp 0.0.0.0:8080', None),
    ('{{range .EM}}x{{else}}e{{end}}', 'D1', 'default', 'e', None),
    ('{{with .S.A}}{{.B.C}}{{end}}', 'D1', 'default', 'deep', None),
    ('{{with .Missing}}x{{else}}none{{end}}', 'D1', 'default', 'none', None),
    ('{{with .Zero}}x{{else}}zero{{end}}', 'D1', 'default', 'zero', None),
    ('{{define "T"}}<{{.}}>{{end}}{{template "T" .Name}}', 'D1', 'default', '<web>', None),
    ('{{define "T"}}<{{.}}>{{end}}{{template "T"}}', 'D1', 'default', '<<no value>>', None),
    ('{{block "B" .Num}}[{{.}}]{{end}}', 'D1', 'default', '[42]', None),
    ('{{template "nope"}}', 'D1', 'default', '', 'template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined'),
    ('{{define "T"}}{{$}}{{end}}{{template "T" .Num}}', 'D1', 'default', '42', None),
    ('a {{/* comment */}} b', 'D1', 'default', 'a  b', None),
    ('a {{- /* c */ -}} b', 'D1', 'default', 'ab', None),
    ('a  {{- .Name -}}  b', 'D1', 'default', 'awebb', None),
    ('{{.Name -}}\n\n x', 'D1', 'default', 'webx', None),
    ('x\n  {{- .Num}}', 'D1', 'default', 'x42', None),
    ('{{- 3}}', 'D1', 'default', '3', None),
    ('{{-3}}', 'D1', 'default', '-3', None),
    ('{{3 -}} x', 'D1', 'default', '3x', None),
    ('{{ 3 }}', 'D1', 'default', '3', None),
    ('{{"a\\tb\\n\\"q\\"\\u00e9\\x41\\101"}}', 'D1', 'default', 'a\tb\n"q"éAA', None),
    ('{{`raw\\n`}}', 'D1', 'default', 'raw\\n', None),
    ("{{1}} {{-1}} {{1.5}} {{1e3}} {{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{'a'}} {{'\\n'}}", 'D1', 'default', '1 -1 1.5 1000 31 15 15 5 1000 97 10', None),
    ('{{true}} {{false}}', 'D1', 'default', 'true false', None),
    ('{{print nil}}', 'D1', 'default', '<nil>', None),
    ('{{1e21}} {{1e20}} {{0.000001}} {{0.0000001}} {{123456.0}} {{1234567.0}} {{100000000.0}} {{-0.5}}', 'D1', 'default', '1e+21 1e+20 1e-06 1e-07 123456 1.234567e+06 1e+08 -0.5', None),
    ('{{len .L}} {{len .M}} {{len .Name}} {{len .Str}}', 'D1', 'default', '3 3 3 13', None),
    ('{{len .Num}}', 'D1', 'default', '', 'template: :1:2: executing "" at <len .Num>: error calling len: len of type int'),
    ('{{len .Nil}}', 'D1', 'default', '', 'template: :1:2: executing "" at <len .Nil>: error calling len: len of nil pointer'),
    ('{{slice .L 1}} {{slice .L 1 2}} {{slice .Name 1 3}}', 'D1', 'default', '[b c] [b] eb', None),
    ('{{slice .L 2 1}}', 'D1', 'default', '', 'template: :1:2: executing "" at <slice .L 2 1>: error calling slice: invalid slice index: 2 > 1'),
    ('{{slice .L 0 9}}', 'D1', 'default', '', 'template: :1:2: executing "" at <slice .L 0 9>: error calling slice: index out of range: 9'),
    ('{{print 1 2}} {{print "a" "b"}} {{print 1 "a" 2}} {{print .L .M}}', 'D1', 'default', '1 2 ab 1a2 [a b c] map[a:x m:<nil> z:1]', None),
    ('{{println 1 "a" .L}}', 'D1', 'default', '1 a [a b c]\n', None),
    ('{{print .Missing}} {{print .Nil}}', 'D1', 'default', '<nil> <nil>', None),
    ('{{printf "%s|%v|%d|%5d|%-5d|%05d|%x|%X|%o|%b|%t|%q|%c|%U|%%" .Name .L .Num .Num .Num .Num .Num .Num .Num .Num .T .Name 65 65}}', 'D1', 'default', 'web|[a b c]|42|   42|42   |00042|2a|2A|52|101010|true|"web"|A|U+0041|%', None),
    ('{{printf "%f|%.2f|%8.3f|%-8.2f|%e|%E|%g|%G|%v" .F .F .F .F .Big .Big .Big .Big .Big}}', 'D1', 'default', '0.500000|0.50|   0.500|0.50    |1.000000e+06|1.000000E+06|1e+06|1E+06|1e+06', None),
    ('{{printf "%5s|%-10s|%.2s|%q" "ab" "cd" "xyz" "a\\"b"}}', 'D1', 'default', '   ab|cd        |xy|"a\\"b"', None),
    ('{{printf "%d" .Name}} {{printf "%s" .Num}} {{printf "%d %d" 1}} {{printf "%d" 1 2}} {{printf "%s" nil}} {{printf "%v" nil}} {{printf "%z" 1}}', 'D1', 'default', '%!d(string=web) %!s(int=42) 1 %!d(MISSING) 1%!(EXTRA int=2) %!s(<nil>) <nil> %!z(int=1)', None),
    ('{{printf "%v %s %d" .M .L .L}}', 'D1', 'default', 'map[a:x m:<nil> z:1] [a b c] [%!d(string=a) %!d(string=b) %!d(string=c)]', None),
    ('{{printf "%T %T %T %T %T %T" 1 1.5 "s" .L .M .T}}', 'D1', 'default', 'int float64 string []interface {} map[string]interface {} bool', None),
    ('{{printf "%+d % d %+.1f" 5 5 1.25}}', 'D1', 'default', '+5  5 +1.2', None),
    ('{{printf "%x %X" "hi" "hi"}}', 'D1', 'default', '6869 6869', None),
    ('{{printf "%6.2f|%-6.1f|%06.2f" 3.14159 2.5 -1.5}}', 'D1', 'default', '  3.14|2.5   |-01.50', None),
    ('{{printf "%3c|%-4q|%#x|%#o" 65 66 255 8}}', 'D1', 'default', "  A|'B' |0xff|010", None),
    ('{{printf "%*d|%-*d|" 5 1 4 2}}', 'D1', 'default', '    1|2   |', None),
    ('{{printf "%.3s|%.0f|%.1e" "abcdef" 2.5 12345.678}}', 'D1', 'default', 'abc|2|1.2e+04', None),
    ('{{eq 1 1}} {{eq 1 2}} {{eq "a" "a"}} {{eq .Num 42}} {{eq .Num 1 2 42}} {{ne .Name "x"}} {{eq .T true}} {{eq .Nil nil}} {{eq .Missing nil}} {{ne .Name nil}}', 'D1', 'default', 'true false true true true true true true true true', None),
    ('{{eq 1 "a"}}', 'D1', 'default', '', 'template: :1:2: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'),
    ('{{eq .F 0.5}}', 'D1', 'default', 'true', None),
    ('{{eq 1 1.0}}', 'D1', 'default', '', 'template: :1:2: executing "" at <eq 1 1.0>: error calling eq: incompatible types for comparison'),
    ('{{eq .L .L}}', 'D1', 'default', '', 'template: :1:2: executing "" at <eq .L .L>: error calling eq: non-comparable type [a b c]: []interface {}'),
    ('{{eq 1}}', 'D1', 'default', '', 'template: :1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison'),
    ('{{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}} {{lt "a" "b"}} {{lt 1.5 2.5}}', 'D1', 'default', 'true true true false true true', None),
    ('{{lt 1 "a"}}', 'D1', 'default', '', 'template: :1:2: executing "" at <lt 1 "a">: error calling lt: incompatible types for comparison'),
    ('{{lt true false}}', 'D1', 'default', '', 'template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'),
    ('{{lt .L .L}}', 'D1', 'default', '', 'template: :1:2: executing "" at <lt .L .L>: error calling lt: invalid type for comparison'),
    ('{{and 1 2}} {{and 0 2}} {{and 1 ""}} {{or 0 ""}} {{or 0 "x" 3}} {{not 1}} {{not ""}} {{and .Missing 1}}', 'D1', 'default', '2 0   x false true <no value>', None),
    ('{{and}}', 'D1', 'default', '', 'template: :1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0'),
    ('{{not}}', 'D1', 'default', '', 'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 0'),
    ('{{not 1 2}}', 'D1', 'default', '', 'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 2'),
    ('{{html "<a href=\'x\'>&\\"</a>"}} {{js "it\'s \\"q\\" <b> & = \\\\ \\n"}} {{urlquery "a b&c=d/é"}}', 'D1', 'default', '&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt; it\\\'s \\"q\\" \\u003Cb\\u003E \\u0026 \\u003D \\\\ \\u000A a+b%26c%3Dd%2F%C3%A9', None),
    ('{{html 1 2 "x"}} {{urlquery 1 "a"}}', 'D1', 'default', '1 2x 1a', None),
    ('{{json "<&>\\u2028\\t\\u0001é"}}', 'D1', 'default', '"<&>\\u2028\\t\\u0001é"', None),
    ('{{json 1e21}} {{json 1e20}} {{json 0.0000001}} {{json 0.000001}} {{json 100.0}} {{json -0.25}}', 'D1', 'default', '1e+21 100000000000000000000 1e-7 0.000001 100 -0.25', None),
    ('{{split "a,b,c" ","}} {{split "abc" ""}} {{len (split "a:b" ":")}}', 'D1', 'default', '[a b c] [a b c] 2', None),
    ('{{join (split "a,b,c" ",") "-"}}', 'D1', 'default', 'a-b-c', None),
    ('{{title "hello world-foo bar_baz 1st"}} {{lower "ABC"}} {{upper "abc"}} {{upper .Str}}', 'D1', 'default', 'Hello World-Foo Bar_baz 1st abc ABC HÉLLO WÖRLD', None),
    ('[{{pad "x" 2 3}}][{{pad "" 2 3}}]', 'D1', 'default', '[  x   ][]', None),
    ('{{truncate "abcdef" 3}} {{truncate "ab" 3}} {{truncate "abc" 3}}', 'D1', 'default', 'abc ab abc', None),
    ('{{.Name | upper | printf "%s!"}}', 'D1', 'default', 'WEB!', None),
    ('{{range $k, $v := .Labels}}{{$k}}={{$v}}\n{{end}}', 'D1', 'default', 'com.example.a=1\ncom.example.b=2\n', None),
    ('{{.Name', 'D1', 'default', None, 'template: :1: unclosed action'),
    ('{{.Name}', 'D1', 'default', None, "template: :1: bad character U+007D '}'"),
    ('{{foo}}', 'D1', 'default', None, 'template: :1: function "foo" not defined'),
    ('{{end}}', 'D1', 'default', None, 'template: :1: unexpected {{end}}'),
    ('{{else}}', 'D1', 'default', None, 'template: :1: unexpected {{else}}'),
    ('{{if .T}}x', 'D1', 'default', None, 'template: :1: unexpected EOF'),
    ('{{}}', 'D1', 'default', None, 'template: :1: missing value for command'),
    ('{{ }}', 'D1', 'default', None, 'template: :1: missing value for command'),
    ('{{$x}}', 'D1', 'default', None, 'template: :1: undefined variable "$x"'),
    ('{{if}}{{end}}', 'D1', 'default', None, 'template: :1: missing value for if'),
    ('{{range}}{{end}}', 'D1', 'default', None, 'template: :1: missing value for range'),
    ('{{with}}{{end}}', 'D1', 'default', None, 'template: :1: missing value for with'),
    ('{{3 | 4}}', 'D1', 'default', None, 'template: :1: non executable command in pipeline stage 2'),
    ('{{(1}}', 'D1', 'default', None, 'template: :1: unclosed left paren'),
    ('{{1)}}', 'D1', 'default', None, 'template: :1: unexpected ")" in command'),
    ('{{"abc}}', 'D1', 'default', None, 'template: :1: unterminated quoted string'),
    ('{{`abc}}', 'D1', 'default', None, 'template: :1: unterminated raw quoted string'),
    ('{{/* x }}', 'D1', 'default', None, 'template: :1: unclosed comment'),
    ('{{/* x */ }}', 'D1', 'default', None, 'template: :1: comment ends before closing delimiter'),
    ('{{.4c}}', 'D1', 'default', None, 'template: :1: bad number syntax: ".4c"'),
    ('{{break}}', 'D1', 'default', None, 'template: :1: {{break}} outside {{range}}'),
    ('{{continue}}', 'D1', 'default', None, 'template: :1: {{continue}} outside {{range}}'),
    ('{{.Name.}}', 'D1', 'default', None, 'template: :1: unexpected <.> in operand'),
    ('{{$x := 1 2}}', 'D1', 'default', '', 'template: :1:8: executing "" at <1>: can\'t give argument to non-function 1'),
    ('{{range $a, $b, $c := .L}}{{end}}', 'D1', 'default', None, 'template: :1: too many declarations in range'),
    ('{{template .Name}}', 'D1', 'default', None, 'template: :1: unexpected ".Name" in template clause'),
    ('{{define "x"}}', 'D1', 'default', None, 'template: :1: unexpected EOF'),
    ('{{if .T}}{{else}}{{else}}{{end}}', 'D1', 'default', None, 'template: :1: expected end; found {{else}}'),
    ('a\nb\n{{.X', 'D1', 'default', None, 'template: :3: unclosed action'),
    ('{{1 2 | 3}}', 'D1', 'default', None, 'template: :1: non executable command in pipeline stage 2'),
    ('{{.Name | "x"}}', 'D1', 'default', None, 'template: :1: non executable command in pipeline stage 2'),
    ('{{"x".Y}}', 'D1', 'default', None, 'template: :1: unexpected . after term "\\"x\\""'),
    ('{{(.S).A.B.C}}', 'D1', 'default', 'deep', None),
    ('{{nil}}', 'D1', 'default', '', 'template: :1:2: executing "" at <nil>: nil is not a command'),
    ('{{.Name 1}}', 'D1', 'default', '', 'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'),
    ('{{.M.z 1}}', 'D1', 'default', '', 'template: :1:4: executing "" at <.M.z>: z is not a method but has arguments'),
    ('{{1 2}}', 'D1', 'default', '', 'template: :1:2: executing "" at <1>: can\'t give argument to non-function 1'),
    ('{{$x := 1}}{{$x 2}}', 'D1', 'default', '', 'template: :1:13: executing "" at <$x>: can\'t give argument to non-function $x'),
    ('{{:x}}', 'D1', 'default', None, 'template: :1: expected :='),
    ('{{#}}', 'D1', 'default', None, 'template: :1: unexpected "#" in command'),
    ('{{é}}', 'D1', 'default', None, 'template: :1: function "é" not defined'),
    ('{{printf}}', 'D1', 'default', '', 'template: :1:2: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0'),
    ('{{index}}', 'D1', 'default', '', 'template: :1:2: executing "" at <index>: wrong number of args for index: want at least 1 got 0'),
    ('{{json}}', 'D1', 'default', '', 'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 0'),
    ('{{join "a"}}', 'D1', 'default', '', 'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1'),
    ('{{len 1 2}}', 'D1', 'default', '', 'template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 2'),
    ('{{range .L}}{{else if .T}}{{end}}', 'D1', 'default', None, 'template: :1: unexpected <if> in input'),
    ('line1\nline2 {{.S.A.X.Y}}', 'D1', 'default', 'line1\nline2 <no value>', None),
    ('{{with .S}}\n{{.A.Q.R}}{{end}}', 'D1', 'default', '\n<no value>', None),
    ('{{.Name.Foo.Bar}}', 'D1', 'default', '', 'template: :1:7: executing "" at <.Name.Foo.Bar>: can\'t evaluate field Foo in type interface {}'),
    ('{{$.L.X}}', 'D1', 'default', '', 'template: :1:3: executing "" at <$.L.X>: can\'t evaluate field X in type interface {}'),
    ('{{if eq .Num 42 -}} \n  yes {{- end}}', 'D1', 'default', 'yes', None),
    ('{{range .L -}}\n  {{.}}\n{{- end}}', 'D1', 'default', 'abc', None),
    ('{{.A.B}} {{.A.C}}', 'D2', 'error', '1 ', 'template: :1:13: executing "" at <.A.C>: map has no entry for key "C"'),
    ('{{.X}}', 'D2', 'error', '', 'template: :1:2: executing "" at <.X>: map has no entry for key "X"'),
    ('{{.X.Y}}', 'D2', 'error', '', 'template: :1:4: executing "" at <.X.Y>: map has no entry for key "X"'),
    ('{{.A.C}}', 'D2', 'zero', '<no value>', None),
    ('{{.X}}', 'D2', 'zero', '<no value>', None),
    ('{{.N}}', 'D2', 'error', '<no value>', None),
    ('{{range .L}}[{{.}}]{{end}}', 'D2', 'default', '[1][<no value>][x]', None),
    ('ok {{.L.X}}', 'D2', 'default', 'ok ', 'template: :1:7: executing "" at <.L.X>: can\'t evaluate field X in type interface {}'),
    ('{{range $i, $e := .Cfg.Env}}{{if $i}},{{end}}{{$e}}{{end}}', 'D2', 'default', 'A=1,B=2', None),
    ('{{.Cfg.Cmd}} {{json .Cfg.Cmd}} {{len .Cfg.Env}}', 'D2', 'default', '<no value> null 2', None),
    ('{{define "a"}}A{{template "b" .}}{{end}}{{define "b"}}B{{.A.B}}{{end}}{{template "a" .}}', 'D2', 'default', 'AB1', None),
    ('{{define "a"}}\n{{.A.Q.Z}}{{end}}{{template "a" .N}}', 'D2', 'default', '\n<no value>', None),
    ('{{define "a"}}x{{end}}{{define "a"}}y{{end}}{{template "a"}}', 'D2', 'default', None, 'template: :1: template: multiple definition of template "a"'),
    ('{{range $i, $v := .L}}{{$i}}{{end}}{{range $v := .L}}{{end}}', 'D2', 'default', '012', None),
    ('{{with .A}}{{.B}}{{$.L}}{{end}}', 'D2', 'default', '1[1 <nil> x]', None),
    ('{{if .N}}{{else if .A}}a{{end}}', 'D2', 'default', 'a', None),
    ('{{ .A.B | printf "%03d" }}', 'D2', 'default', '001', None),
    ('{{printf "%v" .L}}', 'D2', 'default', '[1 <nil> x]', None),
    ('{{print .L}} {{println}}', 'D2', 'default', '[1 <nil> x] \n', None),
    ('{{$a := .A}}{{$a.B}}{{$b := $a.B}}{{$b}}', 'D2', 'default', '11', None),
    ('{{ $x := "a" }}{{ $x }}{{ $x = "b" }}{{ $x }}', 'D2', 'default', 'ab', None),
    ('{{range .L}}{{$x := .}}{{end}}{{$x}}', 'D2', 'default', None, 'template: :1: undefined variable "$x"'),
    ('{{if true}}{{$z := 1}}{{end}}{{$z}}', 'D2', 'default', None, 'template: :1: undefined variable "$z"'),
    ('{{call .A}}', 'D2', 'default', '', 'template: :1:2: executing "" at <call .A>: error calling call: non-function of type map[string]interface {}'),
    ('{{call .N}}', 'D2', 'default', '', 'template: :1:2: executing "" at <call .N>: error calling call: call of nil'),
    ('{{.A | .B}}', 'D2', 'default', '', 'template: :1:7: executing "" at <.B>: B is not a method but has arguments'),
    ('{{3 | printf "%d %d" 1}}', 'D2', 'default', '1 3', None),
    ('{{"\\z"}}', 'D2', 'default', None, 'template: :1: invalid syntax'),
    ("{{'ab'}}", 'D2', 'default', None, "template: :1: malformed character constant: 'ab'"),
    ('{{1.2.3}}', 'D2', 'default', None, 'template: :1: unexpected ".3" in operand'),
    ('{{0x}}', 'D2', 'default', None, 'template: :1: illegal number syntax: "0x"'),
    ('{{1__0}}', 'D2', 'default', None, 'template: :1: illegal number syntax: "1__0"'),
    ('{{99999999999999999999}}', 'D2', 'default', None, 'template: :1: integer overflow: "99999999999999999999"'),
    ('{{len ""}} {{index .L 0}} {{index .L -1}}', 'D2', 'default', '0 1 ', 'template: :1:28: executing "" at <index .L -1>: error calling index: index out of range: -1'),
    ('{{slice .L}} {{slice .L 0 1 2}}', 'D2', 'default', '[1 <nil> x] [1]', None),
    ('{{slice "abc" 0 1 2}}', 'D2', 'default', '', 'template: :1:2: executing "" at <slice "abc" 0 1 2>: error calling slice: cannot 3-index slice a string'),
    ('{{/* multi\nline */}}x', 'D2', 'default', 'x', None),
    ('{{/*c*/ -}}  x', 'D2', 'default', 'x', None),
    ('a {{- /*c*/}}', 'D2', 'default', 'a', None),
    ('{{if .A}}\n  x\n{{- else}}y{{end}}', 'D2', 'default', '\n  x', None),
    ('{{range .Cfg.Env}}{{.}}\n{{end}}', 'D2', 'default', 'A=1\nB=2\n', None),
    ('{{.A.B.C}}', 'D2', 'default', '', 'template: :1:4: executing "" at <.A.B.C>: can\'t evaluate field C in type interface {}'),
    ('{{.L.C}}', 'D2', 'default', '', 'template: :1:4: executing "" at <.L.C>: can\'t evaluate field C in type interface {}'),
    ('{{html .L}} {{urlquery .A}}', 'D2', 'default', '[1 &lt;nil&gt; x] map%5BB%3A1%5D', None),
    ('{{printf "%s %s" .A .L}}', 'D2', 'default', 'map[B:%!s(int=1)] [%!s(int=1) <nil> x]', None),
    ('{{printf "%d|%x|%o" -5 -255 -8}}', 'D2', 'default', '-5|-ff|-10', None),
    ('{{printf "%08.3f|%+08d|%-08d|" -3.14159 42 42}}', 'D2', 'default', '-003.142|+0000042|42      |', None),
    ('{{printf "%5t|%-7v|" true false}}', 'D2', 'default', ' true|false  |', None),
    ('{{printf "%g %g %g %g" 100000.0 1000000.0 0.0001 0.00001}}', 'D2', 'default', '100000 1e+06 0.0001 1e-05', None),
    ('{{printf "%.3g %.10g %.2e" 1234.5678 1.0 0.000123}}', 'D2', 'default', '1.23e+03 1 1.23e-04', None),
    ('{{printf "%6.2v|%v|%v" 3.14159 1e100 -0.0}}', 'D2', 'default', '   3.1|1e+100|-0', None),
    ('{{printf "%q %q" "\\t\\x01é☺" 9786}}', 'D2', 'default', '"\\t\\x01é☺" \'☺\'', None),
]

# (input, Go text/tabwriter(10, 1, 3, ' ', 0) output)
TAB_CASES = [
    ('CONTAINER ID\tIMAGE\tNAMES\nabc\tnginx:latest\tweb\nlongercontainerid\tx\ty\n', 'CONTAINER ID        IMAGE          NAMES\nabc                 nginx:latest   web\nlongercontainerid   x              y\n'),
    ('a\tb\n', 'a         b\n'),
    ('a\tb\tc\nxx\n\tyy\tzz\n', 'a         b         c\nxx\n          yy        zz\n'),
    ('ID\tNAME\n', 'ID        NAME\n'),
    ('x\n', 'x\n'),
    ('', ''),
    ('a\t\tc\nddddddddddddd\te\tf\n', 'a                         c\nddddddddddddd   e         f\n'),
    ('a\tb\t\nc\td\t\n', 'a         b         \nc         d         \n'),
    ('aaaa\tbbb\td\naa\tb\tdd\na\naa\tcccc\teee\n', 'aaaa      bbb       d\naa        b         dd\na\naa        cccc      eee\n'),
    ('no newline\tat end', 'no newline   at end'),
    ('\t\tx\n\ty\n', '                    x\n          y\n'),
]

# (template, data, expected output, expected error) - also from real Go;
# the first two are docker/cli's `docker version` template (trimmed)
GO_CASES_MORE = [
    ('{{with .Client -}}\nClient:{{if ne .Platform nil}}{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}{{end}}\n Version:\t{{.Version}}\n API version:\t{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}} (downgraded from {{.DefaultAPIVersion}}){{end}}\n Go version:\t{{.GoVersion}}\n Os/Arch:\t{{.Os}}/{{.Arch}}\n Context:\t{{.Context}}\n{{- end}}\n\n{{- if ne .Server nil}}{{with .Server}}\n\nServer:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}\n {{- range $component := .Components}}\n {{$component.Name}}:\n  {{- if eq $component.Name "Engine" }}\n  Version:\t{{.Version}}\n  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})\n  Experimental:\t{{index .Details "Experimental"}}\n  {{- else }}\n  Version:\t{{$component.Version}}\n  {{- range $key, $v := $component.Details}}\n  {{$key}}:\t{{index $component.Details $key}}\n   {{- end}}\n  {{- end}}\n {{- end}}\n {{- end}}{{- end}}', {'Client': {'Platform': {'Name': 'Dockyard'}, 'Version': '0.1.0', 'APIVersion': '1.43', 'DefaultAPIVersion': '1.45', 'GoVersion': 'n/a', 'Os': 'linux', 'Arch': 'amd64', 'Context': 'default'}, 'Server': {'Platform': {'Name': ''}, 'Components': [{'Name': 'Engine', 'Version': '0.1.0', 'Details': {'ApiVersion': '1.45', 'MinAPIVersion': '1.24', 'Experimental': 'false'}}, {'Name': 'containerd', 'Version': '1.7', 'Details': {'GitCommit': 'abc', 'Arch': 'x'}}]}}, 'Client: Dockyard\n Version:\t0.1.0\n API version:\t1.43 (downgraded from 1.45)\n Go version:\tn/a\n Os/Arch:\tlinux/amd64\n Context:\tdefault\n\nServer:\n Engine:\n  Version:\t0.1.0\n  API version:\t1.45 (minimum version 1.24)\n  Experimental:\tfalse\n containerd:\n  Version:\t1.7\n  Arch:\tx\n  GitCommit:\tabc', None),
    ('{{with .Client -}}\nClient:{{if ne .Platform nil}}{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}{{end}}\n Version:\t{{.Version}}\n API version:\t{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}} (downgraded from {{.DefaultAPIVersion}}){{end}}\n Go version:\t{{.GoVersion}}\n Os/Arch:\t{{.Os}}/{{.Arch}}\n Context:\t{{.Context}}\n{{- end}}\n\n{{- if ne .Server nil}}{{with .Server}}\n\nServer:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}\n {{- range $component := .Components}}\n {{$component.Name}}:\n  {{- if eq $component.Name "Engine" }}\n  Version:\t{{.Version}}\n  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})\n  Experimental:\t{{index .Details "Experimental"}}\n  {{- else }}\n  Version:\t{{$component.Version}}\n  {{- range $key, $v := $component.Details}}\n  {{$key}}:\t{{index $component.Details $key}}\n   {{- end}}\n  {{- end}}\n {{- end}}\n {{- end}}{{- end}}', {'Client': {'Platform': None, 'Version': '0.1.0', 'APIVersion': '1.45', 'DefaultAPIVersion': '1.45', 'GoVersion': 'n/a', 'Os': 'linux', 'Arch': 'amd64', 'Context': 'default'}, 'Server': None}, 'Client:\n Version:\t0.1.0\n API version:\t1.45\n Go version:\tn/a\n Os/Arch:\tlinux/amd64\n Context:\tdefault', None),
    ('{{if .A -}}\n  a\n{{- else if .B -}}\n  b\n{{- else -}}\n  c\n{{- end}}', {'B': 1}, 'b', None),
    ('{{ ( ( .A ) ) }} {{ (len (printf "%s%s" .S .S)) }} {{ (index .L 0).X }}', {'A': 1, 'S': 'ab', 'L': [{'X': 9}]}, '1 4 9', None),
    ('x {{- "" -}} y {{- 1 }}', {}, 'xy1', None),
    ('{{print 1.0 2 "x" true false nil}}|{{print "a" 1 "b"}}|{{print 1 true}}', {}, '1 2xtrue false <nil>|a1b|1 true', None),
    ('{{println}}{{println "a" "b"}}', {}, '\na b\n', None),
    ('{{$x := 0}}{{range .}}{{$x = .}}{{end}}{{$x}}', [1, 2, 3], '3', None),
    ('{{range $i, $_ := .}}{{$i}}{{end}}', ['a', 'b'], '01', None),
    ('{{range $k, $v := .}}{{$k}}{{end}}', {'b': 1, 'a': 2, 'B': 3, '_': 4}, 'B_ab', None),
    ('line1\n{{if .A}}\n{{.A.B.C}}\n{{end}}', {'A': {'B': 'str'}}, 'line1\n\n', 'template: :3:4: executing "" at <.A.B.C>: can\'t evaluate field C in type interface {}'),
    ('{{define "a"}}{{.X}}{{end}}\n{{template "a" .}} and {{template "a" .Y}}', {'X': 1, 'Y': {'X': 2}}, '\n1 and 2', None),
    ('{{.A}} {{- /* a\ncomment */}} {{.B}}', {'A': 1, 'B': 2}, '1 2', None),
    ('{{urlquery "a/b?c=d e&f" "x"}} {{js "<script>"}} {{html "<" 1}}', {}, 'a%2Fb%3Fc%3Dd+e%26fx \\u003Cscript\\u003E &lt;1', None),
    ('{{.A.B.C}}', {'A': [1]}, '', 'template: :1:4: executing "" at <.A.B.C>: can\'t evaluate field B in type interface {}'),
    ('{{index . "a" "b" 1}}', {'a': {'b': [0, 5]}}, '5', None),
    ('{{index . 1 0}}', [[1], [2, 3]], '2', None),
    ('{{slice .S 1}} {{slice .S}} {{index .S 0}}', {'S': 'héllo'}, 'éllo héllo 104', None),
    ('{{printf "%-5d|%5.1f|%x|%s" 3 2.25 "é" .}}', [1, 'a'], '3    |  2.2|c3a9|[%!s(int=1) a]', None),
    ('{{printf "%v|%+v|%s" . . .}}', {'a': {'b': [1.5, True]}}, 'map[a:map[b:[1.5 true]]]|map[a:map[b:[1.5 true]]]|map[a:map[b:[%!s(float64=1.5) %!s(bool=true)]]]', None),
    ('{{if and (eq .A 1) (ne .B "x") (not .C)}}ok{{end}}', {'A': 1, 'B': 'y', 'C': False}, 'ok', None),
    ('{{or .Missing .Other "default"}}', {}, 'default', None),
    ('{{and .Missing .Boom.X}}', {}, '<no value>', None),
    ('{{or 1 .Nil.X}}', {'Nil': None}, '1', None),
]


DATA = {"D1": D1, "D2": D2}


@pytest.mark.parametrize("tmpl,data,missingkey,out,err", GO_CASES, ids=[c[0][:40] for c in GO_CASES])
def test_go_oracle(tmpl, data, missingkey, out, err):
    if err is None:
        assert render(tmpl, DATA[data], missingkey=missingkey) == out
    else:
        with pytest.raises(TemplateError) as ei:
            render(tmpl, DATA[data], missingkey=missingkey)
        assert ei.value.message == err
        assert str(ei.value) == err
        if out is None:
            assert ei.value.kind == "parse"
        else:
            assert ei.value.kind == "exec"
            assert ei.value.partial == out


@pytest.mark.parametrize("tmpl,data,out,err", GO_CASES_MORE, ids=[c[0][:40] for c in GO_CASES_MORE])
def test_go_oracle_more(tmpl, data, out, err):
    if err is None:
        assert render(tmpl, data) == out
    else:
        with pytest.raises(TemplateError) as ei:
            render(tmpl, data)
        assert ei.value.message == err


def test_docker_version_template_through_tabwriter():
    # docker version: template output -> tabwriter(20, 1, 1) + "\n"
    tmpl, data = GO_CASES_MORE[1][0], GO_CASES_MORE[1][1]
    out = tabwrite(render(tmpl, data, name="version") + "\n", 20, 1, 1)
    assert out == (
        "Client:\n"
        " Version:           0.1.0\n"
        " API version:       1.45\n"
        " Go version:        n/a\n"
        " Os/Arch:           linux/amd64\n"
        " Context:           default\n"
    )


@pytest.mark.parametrize("text,out", TAB_CASES)
def test_tabwriter_oracle(text, out):
    assert tabwrite(text) == out


# ---------------------------------------------------------------- tabwriter


def test_tabwriter_docker_wide_runes():
    # docker's tabwriter fork measures cells with go-runewidth: CJK is 2 wide
    assert tabwrite("日本語\tx\nab\ty\n") == "日本語    x\nab        y\n"


def test_tabwriter_other_settings():
    # docker version: tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)
    out = tabwrite(" Version:\t1.0\n API version:\t1.45\n", 20, 1, 1)
    assert out == " Version:           1.0\n API version:       1.45\n"
    # padding wider than minwidth
    assert tabwrite("averyveryverylongcell\tx\n", 10, 1, 3) == "averyveryverylongcell   x\n"
    assert tabwrite("a\tb\n", 0, 8, 1, "\t") == "a\tb\n"


# ---------------------------------------------------------------- more Go semantics


@pytest.mark.parametrize(
    "tmpl,data,out",
    [
        # json keeps dict insertion order (Go struct field order); the
        # caller sorts real maps (Go sorts map keys)
        ('{{json .}}', {"b": 1, "a": [1.5, None, "x<&>"]}, '{"b":1,"a":[1.5,null,"x<&>"]}'),
        ("{{json .}}", {"f": 1e21, "g": 1e-7, "h": 100.0, "i": -0.0}, '{"f":1e+21,"g":1e-7,"h":100,"i":-0}'),
        ("{{json .}}", "\u2028\x01\t\"\\", '"\\u2028\\u0001\\t\\"\\\\"'),
        ("{{json .}}", float("nan"), ""),  # docker ignores the encoder error
        ("{{json .}}", None, "null"),
        # docker's join/split are lenient about element types here
        ('{{join .Cmd " "}}', {"Cmd": ["sh", "-c", "echo hi"]}, "sh -c echo hi"),
        ('{{join .Cmd ","}}', {"Cmd": None}, ""),
        ('{{join (split .Image ":") "@"}}', {"Image": "nginx:1.25"}, "nginx@1.25"),
        # range over an int and {{else with}} (newer Go releases)
        ("{{range 3}}{{.}}{{end}}", None, "012"),
        ("{{range $i := 2}}{{$i}}{{end}}", None, "01"),
        ("{{with .A}}a{{else with .B}}b{{.}}{{else}}c{{end}}", {"B": 2}, "b2"),
        ("{{with .A}}a{{else with .B}}b{{else}}c{{end}}", {}, "c"),
        # maps iterate in sorted key order
        ("{{range $k, $v := .}}{{$k}}{{$v}} {{end}}", {"b": 2, "c": 3, "a": 1}, "a1 b2 c3 "),
        ("{{.}}", {"b": [1, {"y": None}], "a": True}, "map[a:true b:[1 map[y:<nil>]]]"),
        ("{{.}}", None, "<no value>"),
        ("{{.}}", [1, 2.5, "x", None, True], "[1 2.5 x <nil> true]"),
        ("{{.}}", 1e6, "1e+06"),
        ("{{.}}", 123456789.0, "1.23456789e+08"),
        ("{{.}}", 0.000012, "1.2e-05"),
        ("{{.}}", float("inf"), "+Inf"),
        ("{{printf \"%5.2f|%-6s|%q\" .F .S .S}}", {"F": 3.14159, "S": "ab"}, ' 3.14|ab    |"ab"'),
        ("{{printf \"%v\" .}}", {"k": [None]}, "map[k:[<nil>]]"),
        ("{{pad .A 1 1}}|{{truncate .A 2}}|{{title .A}}", {"A": "hello"}, " hello |he|Hello"),
        ("{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", [1, 2, 3, 4], "12"),
        ("{{define \"row\"}}{{.Name}}={{.Value}}\n{{end}}{{range .}}{{template \"row\" .}}{{end}}",
         [{"Name": "a", "Value": 1}, {"Name": "b", "Value": 2}], "a=1\nb=2\n"),
        ("{{block \"x\" .}}[{{.}}]{{end}}", "v", "[v]"),
        ("{{$}}", 5, "5"),
        ("{{ .A }}\n{{- /* comment */ -}}\n{{ .B }}", {"A": 1, "B": 2}, "12"),
    ],
)
def test_semantics(tmpl, data, out):
    assert render(tmpl, data) == out


class _Ctx:
    """A formatter-context-like object, as docker's list commands use."""

    Size = "10MB"

    def __init__(self, cid, names, labels=None):
        self._id = cid
        self._names = names
        self._labels = labels or {}

    def ID(self):
        return self._id

    def Names(self):
        return self._names

    def Label(self, name):
        return self._labels.get(name, "")

    def Ports(self):
        return None


def test_objects_methods_and_attributes():
    c = _Ctx("abc", "web", {"app": "x"})
    assert render("{{.ID}} {{.Names}} {{.Size}} {{.Label \"app\"}}", c) == "abc web 10MB x"
    assert render("{{\"app\" | .Label}}", c) == "x"
    assert render("{{.Ports}}", c) == "<no value>"
    with pytest.raises(TemplateError) as ei:
        render("{{.Nope}}", c)
    assert ei.value.message == 'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type _Ctx'
    with pytest.raises(TemplateError) as ei:
        render("{{.Size 1}}", c)
    assert "Size has arguments but cannot be invoked as function" in ei.value.message
    # zero-arg callables stored in dicts are called
    assert render("{{.F}}", {"F": lambda: 7}) == "7"
    # {{json .}} on an object: exported zero-arg methods/attributes, sorted
    assert render("{{json .}}", c) == '{"ID":"abc","Names":"web","Ports":null,"Size":"10MB"}'


def test_user_funcs_and_call():
    out = render("{{getDetailsOrder .}}", {"b": 1, "a": 2}, funcs={"getDetailsOrder": lambda d: sorted(d)})
    assert out == "[a b]"
    assert render("{{call .F 2 3}}", {"F": lambda a, b: a * b}) == "6"
    with pytest.raises(TemplateError) as ei:
        render("{{call .F}}", {"F": 1})
    assert "error calling call: non-function" in ei.value.message
    with pytest.raises(TemplateError) as ei:
        render("{{foo}}", None)
    assert ei.value.message == 'template: :1: function "foo" not defined'


def test_missingkey_error_mode():
    # docker inspect's raw-JSON fallback executes with missingkey=error
    with pytest.raises(TemplateError) as ei:
        render("{{.State.Nope}}", {"State": {}}, missingkey="error")
    assert ei.value.message == (
        'template: :1:8: executing "" at <.State.Nope>: map has no entry for key "Nope"'
    )
    with pytest.raises(ValueError):
        parse("x", missingkey="bogus")


def test_parse_once_execute_many():
    t = parse("{{.A}}-{{len .B}}")
    assert [t.execute({"A": i, "B": "x" * i}) for i in range(3)] == ["0-0", "1-1", "2-2"]


def test_error_attributes():
    with pytest.raises(TemplateError) as ei:
        render("{{.Foo", {})
    e = ei.value
    assert e.kind == "parse" and e.exit_code == 64
    assert e.docker_message == "template parsing error: template: :1: unclosed action"
    with pytest.raises(TemplateError) as ei:
        render("ok {{index .L 3}}", {"L": []})
    e = ei.value
    assert e.kind == "exec" and e.exit_code == 1 and e.partial == "ok "
    with pytest.raises(TemplateError) as ei:
        render("{{.Foo", {}, name="version")
    assert ei.value.message == "template: version:1: unclosed action"
    with pytest.raises(TemplateError) as ei:
        render("a\n\n{{.Foo}", {})
    assert ei.value.message == "template: :3: bad character U+007D '}'"


# ---------------------------------------------------------------- docker formatter

HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Size": "SIZE"}
ROWS = [_Ctx("abc123", "web"), _Ctx("0123456789ab", "database-primary")]


def test_format_rows_table():
    out = format_rows("table {{.ID}}\\t{{.Names}}\\t{{.Size}}", ROWS, HEADERS)
    assert out == (
        "CONTAINER ID   NAMES              SIZE\n"
        "abc123         web                10MB\n"
        "0123456789ab   database-primary   10MB\n"
    )


def test_format_rows_table_real_tabs_and_dicts():
    rows = [{"ID": "a", "Image": "busybox"}, {"ID": "bb", "Image": "alpine:3"}]
    out = format_rows("table {{.ID}}\t{{.Image}}", rows, HEADERS)
    assert out == "CONTAINER ID   IMAGE\na              busybox\nbb             alpine:3\n"


def test_format_rows_header_functions_and_unknown_headers():
    # json/split/join/title/lower/upper/truncate leave the header intact;
    # fields missing from the header dict are upper-cased
    out = format_rows("table {{.ID | lower}}\\t{{truncate .Names 3}}\\t{{.Extra}}",
                      [{"ID": "ABC", "Names": "database", "Extra": 1}], HEADERS)
    assert out == "CONTAINER ID   NAMES     EXTRA\nabc            dat       1\n"


def test_format_rows_empty_table_prints_header_only():
    assert format_rows("table {{.ID}}\t{{.Names}}", [], HEADERS) == "CONTAINER ID   NAMES\n"
    assert format_rows("{{.ID}}", [], HEADERS) == ""


def test_format_rows_plain_json_and_defaults():
    assert format_rows("{{.ID}}: {{.Names}}", ROWS) == "abc123: web\n0123456789ab: database-primary\n"
    # plain (non-table) formats get \\t/\\n replaced too, and are trimmed of spaces
    assert format_rows("  {{.ID}}\\t{{.Names}}\\n  ", ROWS[:1]) == "abc123\tweb\n\n"
    assert format_rows("json", [{"ID": "a"}]) == '{"ID":"a"}\n'
    assert format_rows("json", ROWS[:1]) == '{"ID":"abc123","Names":"web","Ports":null,"Size":"10MB"}\n'
    defaults = {"table": "table {{.ID}}\\t{{.Names}}", "": "table {{.ID}}\\t{{.Names}}",
                "raw": "container_id: {{.ID}}\\nnames: {{.Names}}\\n"}
    assert format_rows("", ROWS[:1], HEADERS, defaults=defaults) == "CONTAINER ID   NAMES\nabc123         web\n"
    assert format_rows("table", ROWS[:1], HEADERS, defaults=defaults) == "CONTAINER ID   NAMES\nabc123         web\n"
    assert format_rows("raw", ROWS[:1], defaults=defaults) == "container_id: abc123\nnames: web\n\n"


def test_format_rows_errors():
    with pytest.raises(FormatError) as ei:
        format_rows("{{.ID", ROWS)
    assert str(ei.value) == "template parsing error: template: :1: unclosed action"
    assert ei.value.exit_code == 1
    with pytest.raises(FormatError) as ei:
        format_rows("{{.Nope}}", ROWS)
    assert str(ei.value) == (
        "template parsing error: template: :1:2: executing \"\" at <.Nope>: "
        "can't evaluate field Nope in type _Ctx"
    )
    assert ei.value.kind == "exec" and ei.value.exit_code == 1


def test_format_one():
    assert format_one("{{.Client.Version}}", {"Client": {"Version": "1.0"}}) == "1.0\n"
    assert format_one("json", {"Client": {"Version": "1.0"}}) == '{"Client":{"Version":"1.0"}}\n'
    with pytest.raises(FormatError) as ei:
        format_one("{{.Client", {}, name="version")
    assert str(ei.value) == "template parsing error: template: version:1: unclosed action"
    assert ei.value.exit_code == 64
    with pytest.raises(FormatError) as ei:
        format_one("{{.A.B}}", {"A": None})
    assert ei.value.exit_code == 1


# ---------------------------------------------------------------- import cost


def test_import_is_light():
    code = (
        "import sys; before = set(sys.modules); import dockyard.cli.gotemplate; "
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('dockyard')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() in ("[]", "['__future__']")
