""".dockerignore: reading the file and matching context paths against it
exactly as moby/patternmatcher does (Go's filepath.Match syntax plus `**`,
`!` exceptions, last match wins), for the CLI that tars a context and for
the daemon that trims one. Paths are slash-separated and relative to the
context root.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Optional

from ..errors import InvalidParameter

__all__ = ["BadPattern", "MatchInfo", "Pattern", "PatternMatcher", "clean", "filepath_match",
           "files_to_remove", "matches", "matches_or_parent_matches", "read_ignore_file",
           "trim_build_files_from_excludes", "walk_context"]

_BOM = "\ufeff"
# Characters patternmatcher escapes in its regex (its other specials are
# `*`, `?`, `[`, `]` and `\`).
_ESCAPE = set(".+()|{}$")


class BadPattern(InvalidParameter):
    """Go's filepath.ErrBadPattern."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def clean(path: str) -> str:
    """Go's filepath.Clean (Unix): the shortest equivalent path, "." if empty."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    if rooted:
        return "/" + s
    return s or "."


def read_ignore_file(data: bytes | str) -> list[str]:
    """The patterns of a .dockerignore (ignorefile.ReadAll): a leading BOM
    dropped, `#` comments only in column 0, blanks trimmed, empty lines
    skipped, `!` kept with the blanks after it removed, each pattern Clean'd
    and its leading `/` dropped."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="surrogateescape")
    out: list[str] = []
    for n, line in enumerate(data.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if n == 0 and line.startswith(_BOM):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = _go_trim_space(line)
        if pattern == "":
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = _go_trim_space(pattern[1:])
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _go_trim_space(s: str) -> str:
    return s.strip(" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                   "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


# -- Go's filepath.Match (Unix) ----------------------------------------------------------

def filepath_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: `*` and `?` never match `/`, `[...]` classes
    (`^` negates, ranges, `\\` escapes), `\\` escapes. Raises BadPattern for
    a malformed pattern, as Go does (also when the name does not match)."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (rest == "" or pattern):
            name = rest
            continue
        if star:
            i = 0
            matched = False
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    matched = True
                    break
                i += 1
            if matched:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return name == ""


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Match chunk at the start of s; raises BadPattern even after a mismatch,
    so the whole chunk is checked."""
    failed = False
    while chunk:
        if not failed and s == "":
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            match = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= r <= hi:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if chunk == "":
                    raise BadPattern()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def _get_esc(chunk: str) -> tuple[str, str]:
    if chunk == "" or chunk[0] in "-]":
        raise BadPattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if chunk == "":
            raise BadPattern()
    r, rest = chunk[0], chunk[1:]
    if rest == "":
        raise BadPattern()
    return r, rest


# -- patternmatcher ---------------------------------------------------------------------

@dataclass
class Pattern:
    """One cleaned pattern; `exclusion` for a `!` exception."""
    cleaned: str
    exclusion: bool = False
    dirs: list[str] = field(default_factory=list)
    _kind: str = ""  # exact | prefix | suffix | regexp, once compiled
    _regexp: Optional[re.Pattern[str]] = None
    _bad: bool = False

    def __str__(self) -> str:
        return self.cleaned

    def match(self, path: str) -> bool:
        if not self._kind and not self._bad:
            self._compile()
        if self._bad:
            raise BadPattern()
        if self._kind == "exact":
            return path == self.cleaned
        if self._kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self._kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self._regexp is not None
        return self._regexp.match(path) is not None

    def _compile(self) -> None:
        rx = ["^"]
        kind = "exact"
        p = self.cleaned
        i = 0  # loop iterations, not positions: `**` is one step
        pos = 0
        in_class = False
        while pos < len(p):
            ch = p[pos]
            pos += 1
            if ch == "*":
                if pos < len(p) and p[pos] == "*":
                    pos += 1
                    if pos < len(p) and p[pos] == "/":
                        pos += 1
                    if pos >= len(p):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            rx.append(".*")
                            kind = "regexp"
                    else:
                        rx.append("(.*/)?")
                        kind = "regexp"
                    if i == 0:
                        kind = "suffix"
                else:
                    rx.append("[^/]*")
                    kind = "regexp"
            elif ch == "?":
                rx.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                rx.append("\\" + ch)
            elif ch == "\\":
                if pos < len(p):
                    rx.append("\\" + p[pos])
                    pos += 1
                    kind = "regexp"
                else:
                    rx.append("\\")
            elif ch in "[]":
                # Python warns about `[` inside a class where Go takes it literally.
                rx.append("\\[" if ch == "[" and in_class else ch)
                in_class = ch == "[" or (in_class and ch != "]")
                kind = "regexp"
            else:
                rx.append(ch)
            i += 1
        if kind == "regexp":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._regexp = re.compile("".join(rx) + r"\Z", re.DOTALL)
            except re.error:
                self._bad = True
                return
        self._kind = kind


@dataclass
class MatchInfo:
    """Per-pattern results for a directory, for its children's matching."""
    parent_matched: list[bool] = field(default_factory=list)


class PatternMatcher:
    """patternmatcher.New: patterns trimmed, Clean'd, validated with
    filepath.Match; `!` alone is an error."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for p in patterns:
            p = _go_trim_space(p)
            if p == "":
                continue
            p = clean(p)
            exclusion = p[0] == "!"
            if exclusion:
                if len(p) == 1:
                    raise InvalidParameter('illegal exclusion pattern: "!"')
                p = p[1:]
                self.exclusions = True
            filepath_match(p, ".")
            self.patterns.append(Pattern(cleaned=p, exclusion=exclusion, dirs=p.split("/")))

    def matches(self, file: str) -> bool:
        """Whether `file` is excluded; a pattern also matches the file's
        parent directory cut to the pattern's depth."""
        matched = False
        parent = _dir(file)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            match = pat.match(file)
            if not match and parent != "." and len(pat.dirs) <= len(parent_dirs):
                match = _quiet_match(pat, "/".join(parent_dirs[:len(pat.dirs)]))
            if match:
                matched = not pat.exclusion
        return matched

    def matches_or_parent_matches(self, file: str) -> bool:
        """Like matches, but a pattern matching any parent directory counts."""
        matched = False
        parent = _dir(file)
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            match = pat.match(file)
            if not match and parent != ".":
                for i in range(len(parent_dirs)):
                    if _quiet_match(pat, "/".join(parent_dirs[:i + 1])):
                        match = True
                        break
            if match:
                matched = not pat.exclusion
        return matched

    def matches_using_parent_result(self, file: str, parent_matched: bool) -> bool:
        """For walkers: the parent directory's own result seeds the answer."""
        matched = parent_matched
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            if pat.match(file):
                matched = not pat.exclusion
        return matched

    def matches_using_parent_results(self, file: str, parent: MatchInfo
                                     ) -> tuple[bool, MatchInfo]:
        """For walkers: each pattern's result for the parent seeds it."""
        pm = parent.parent_matched
        if pm and len(pm) != len(self.patterns):
            raise InvalidParameter("wrong number of values in parentMatched")
        matched = False
        info = MatchInfo([False] * len(self.patterns))
        for i, pat in enumerate(self.patterns):
            match = pm[i] if pm else False
            if not match:
                if pat.exclusion != matched:
                    continue
                match = pat.match(file)
                if not match and not pm:
                    parent_path = _dir(file)
                    if parent_path != ".":
                        dirs = parent_path.split("/")
                        for j in range(len(dirs)):
                            if _quiet_match(pat, "/".join(dirs[:j + 1])):
                                match = True
                                break
            info.parent_matched[i] = match
            if match:
                matched = not pat.exclusion
        return matched, info


def _quiet_match(pat: Pattern, path: str) -> bool:
    # patternmatcher ignores errors on the parent-directory retries.
    try:
        return pat.match(path)
    except BadPattern:
        return False


def _dir(path: str) -> str:
    """Go's filepath.Dir."""
    i = path.rfind("/")
    return clean(path[:i + 1]) if i >= 0 else "."


def matches(file: str, patterns: Iterable[str]) -> bool:
    """patternmatcher.Matches: False for the context root itself."""
    pm = PatternMatcher(patterns)
    file = clean(file)
    return False if file == "." else pm.matches(file)


def matches_or_parent_matches(file: str, patterns: Iterable[str]) -> bool:
    pm = PatternMatcher(patterns)
    file = clean(file)
    return False if file == "." else pm.matches_or_parent_matches(file)


# -- the build context -----------------------------------------------------------------

def trim_build_files_from_excludes(excludes: list[str], dockerfile: str,
                                   dockerfile_from_stdin: bool = False) -> list[str]:
    """The docker CLI always sends .dockerignore and the Dockerfile: when the
    patterns exclude them, exceptions are appended (the daemon drops them
    again, `files_to_remove`)."""
    out = list(excludes)
    if matches(".dockerignore", out):
        out.append("!.dockerignore")
    if matches(dockerfile, out) and not dockerfile_from_stdin:
        out.append("!" + dockerfile)
    return out


def files_to_remove(excludes: list[str], dockerfile: str) -> list[str]:
    """What the daemon deletes from a received context after reading the
    Dockerfile: .dockerignore and the Dockerfile, when the ignore patterns
    match them."""
    return [f for f in (".dockerignore", dockerfile) if matches(f, excludes)]


def walk_context(root: str, excludes: list[str], legacy: bool = False) -> Iterator[str]:
    """The relative paths (directories before their contents, sorted by
    name) the docker CLI puts in a context tar for `excludes`, as its
    archive.TarWithOptions walks: an excluded directory is skipped whole
    unless an exception pattern lies under it. Each path is matched with its
    parent directory's per-pattern results (MatchesUsingParentResults, docker
    CLI 23 and later); `legacy` matches each path on its own (Matches, the
    20.10 CLI), where `!dir` also re-includes files under dir that a later
    pattern excluded."""
    pm = PatternMatcher(excludes)

    def excluded(child: str, parent_info: MatchInfo) -> tuple[bool, MatchInfo]:
        if legacy:
            return pm.matches(child), parent_info
        return pm.matches_using_parent_results(child, parent_info)

    def walk(rel: str, parent_info: MatchInfo) -> Iterator[str]:
        path = os.path.join(root, rel) if rel else root
        try:
            names = sorted(os.listdir(path))
        except (NotADirectoryError, FileNotFoundError):
            return
        for name in names:
            child = f"{rel}/{name}" if rel else name
            is_dir = os.path.isdir(os.path.join(root, child)) and not os.path.islink(
                os.path.join(root, child))
            skip, info = excluded(child, parent_info)
            if skip:
                if not is_dir:
                    continue
                if not pm.exclusions:
                    continue
                prefix = child + "/"
                if not any(p.exclusion and (p.cleaned + "/").startswith(prefix)
                           for p in pm.patterns):
                    continue
                # Kept for an exception below it; the directory entry itself is not sent.
                yield from walk(child, info)
                continue
            yield child
            if is_dir:
                yield from walk(child, info)

    yield from walk("", MatchInfo())
