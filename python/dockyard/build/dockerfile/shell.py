"""Shell-word processing for Dockerfile arguments: quotes, escapes and
variable expansion as buildkit's `frontend/dockerfile/shell` lexer does it.

Docker 20.10's classic builder vendors buildkit v0.8, whose lexer knows `$v`,
`${v}`, `${v:-w}`, `${v:+w}`, `${v?m}` and `${v:?m}` and rejects everything
else after a name with `missing ':' in substitution`. Dockyard accepts the
newer forms too (`${v-w}`, `${v+w}`, `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`,
`${v/p/r}`, `${v//p/r}`), with the same results and messages as dockerd for
every form dockerd accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...errors import InvalidParameter

__all__ = ["Lex", "ShellError", "env_from_list", "go_quote"]

_EOF = ""
_SPECIAL_PARAMS = set("@*#?-$!0")


class ShellError(InvalidParameter):
    """A word could not be processed (bad substitution, unterminated quote,
    `${v:?message}` on an unset variable)."""


def go_quote(s: str) -> str:
    """Go's `strconv.Quote`, used by dockerd's `%q` in messages."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def env_from_list(env: Iterable[str]) -> dict[str, str]:
    """`["K=v", "X"]` as a mapping; a later key wins, a bare key is empty."""
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch


@dataclass
class _Words:
    """Word splitting of an expanded string (ProcessWords): expanded variable
    values split on whitespace, quoted and escaped text never does."""
    word: str = ""
    words: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


@dataclass
class Lex:
    """The lexer. `raw_quotes` keeps quote characters, `raw_escapes` keeps
    escape tokens, `skip_unset_env` leaves references to unset variables as
    written (the heredoc detector uses all three)."""

    escape_token: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_unset_env: bool = False
    # Treat `<<` plus following blanks as one raw unit (heredoc detection).
    heredocs: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand one word: the result is a single string (spaces kept)."""
        return self._process(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand and split into words (EXPOSE's word-to-words expansion)."""
        return self._process(word, env)[1]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]
                                  ) -> tuple[str, set[str], set[str]]:
        """Like process_word, plus the names found set and the names not set."""
        st = _State(self, word, env)
        result, _ = st.run()
        return result, st.matches, st.nonmatches

    def _process(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        return _State(self, word, env).run()


class _State:
    def __init__(self, lex: Lex, source: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.source = source
        self.env = env
        self.sc = _Scanner(source)
        self.esc = lex.escape_token
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    def run(self) -> tuple[str, list[str]]:
        try:
            return self.stop_on(_EOF, self.lex.raw_escapes)
        except ShellError as e:
            raise ShellError(f"failed to process {go_quote(self.source)}: {e}") from None

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matches.add(name)
            return self.env[name], True
        self.nonmatches.add(name)
        return "", False

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        sc = self.sc
        result: list[str] = []
        words = _Words()
        while sc.peek() != _EOF:
            ch = sc.peek()
            if stop != _EOF and ch == stop:
                sc.next()
                return "".join(result), words.get_words()
            if ch in "'\"$" or (ch == "<" and self.lex.heredocs):
                if ch == "'":
                    tmp = self.single_quote()
                elif ch == '"':
                    tmp = self.double_quote()
                elif ch == "$":
                    tmp = self.dollar()
                else:
                    tmp = self.possible_heredoc()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = sc.next()
            if ch == self.esc:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = sc.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop != _EOF:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def single_quote(self) -> str:
        # All chars between single quotes are taken as-is, escapes included.
        sc = self.sc
        out = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise ShellError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        # Variables expand; the escape token only escapes `"`, `$` and itself.
        sc = self.sc
        out = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            p = sc.peek()
            if p == _EOF:
                raise ShellError(
                    "unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = sc.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self.dollar())
                continue
            ch = sc.next()
            if ch == self.esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", self.esc):
                    ch = sc.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek() != _EOF:
            space.append(sc.next())
        return "<<" + "".join(space)

    def name(self) -> str:
        sc = self.sc
        out: list[str] = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not out and ch.isdigit():
                while sc.peek() != _EOF and sc.peek().isdigit():
                    out.append(sc.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            out.append(sc.next())
        return "".join(out)

    def _word_until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            word, _ = self.stop_on(stop, raw_escapes)
        except ShellError:
            if self.sc.peek() == _EOF:
                raise ShellError(missing) from None
            raise
        return word

    def dollar(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        sc.next()
        if sc.peek() == _EOF:
            raise ShellError("syntax error: missing '}'")
        if sc.peek() in "{}:":
            raise ShellError("syntax error: bad substitution")
        name = self.name()
        ch = sc.next()
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${%s}" % name
            return value

        colon = ch == ":"
        if colon:
            ch = sc.next()
            if ch not in "+-?" or ch == _EOF:
                # dockerd 20.10: the word is consumed before the modifier is refused.
                self._word_until("}", False, "syntax error: missing '}'")
                raise ShellError(f"unsupported modifier ({ch}) in substitution")
        if ch == "/":
            return self._replace(name)
        if ch == _EOF or ch not in "+-?#%":
            raise ShellError("missing ':' in substitution")

        mod = (":" if colon else "") + ch
        trim = ch in "#%"
        word = self._word_until("}", trim, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${%s%s%s}" % (name, mod, word)
        unset = not found or (colon and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if colon and value == "":
                raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = bool(word) and word[0] == ch
        if greedy:
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _replace(self, name: str) -> str:
        sc = self.sc
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        pattern = self._word_until("/", True, "syntax error: missing '/' in ${}")
        replacement = self._word_until("}", True, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        rx = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return rx.sub(lambda _m: replacement, value)
        m = rx.search(value)
        if m is None:
            return value
        return value[:m.start()] + replacement + value[m.end():]


def _pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, `\\` escapes) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise ShellError(f"invalid pattern ({pattern}) in substitution: "
                                 f"invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse, keeping each `\x` escape pair in order.
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            units.append(pattern[i:i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
