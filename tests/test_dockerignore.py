""".dockerignore reading and matching (dockyard.build.dockerignore), with the
cases of moby/patternmatcher's tests and Go's filepath.Match tests, plus the
context walk and the always-sent Dockerfile/.dockerignore rules."""

from __future__ import annotations

import fnmatch
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.build.dockerignore import (
    BadPattern, MatchInfo, PatternMatcher, clean, filepath_match, files_to_remove, matches,
    matches_or_parent_matches, read_ignore_file, trim_build_files_from_excludes, walk_context,
)
from dockyard.errors import InvalidParameter


def test_read_ignore_file() -> None:
    assert read_ignore_file(b"") == []
    content = ("test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
               "! /inverted/abs/path\n!\n! ")
    assert read_ignore_file(content) == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]
    # BOM, CRLF, comments only in column 0, Clean, a lone "/" kept.
    data = b"\xef\xbb\xbf# c\r\n  # not a comment\r\na/../b/./c//\n/\n  x  \n"
    assert read_ignore_file(data) == [
        "# not a comment", "b/c", "/", "x"]


@pytest.mark.parametrize("patterns,text,expected", [
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go"], ".", False),
    ([], "/any/path/there", False),
])
def test_simple_matches(patterns: list[str], text: str, expected: bool) -> None:
    assert matches(text, patterns) is expected


def test_pattern_errors() -> None:
    with pytest.raises(InvalidParameter, match='^illegal exclusion pattern: "!"$'):
        matches("fileutils.go", ["!"])
    with pytest.raises(BadPattern, match="^syntax error in pattern$"):
        matches("/any/path/there", ["["])
    # Valid for filepath.Match, but not as a regexp: the error comes when matching, every time.
    pm = PatternMatcher(["[Local-Only]/"])
    for _ in range(2):
        with pytest.raises(BadPattern):
            pm.matches_or_parent_matches("x")


def test_clean_patterns() -> None:
    assert len(PatternMatcher(["docs", "config", ""]).patterns) == 2
    for pats in (["docs", "!docs/README.md"], ["docs", "  !docs/README.md"],
                 ["docs", "!docs/README.md  "]):
        assert PatternMatcher(pats).exclusions
    assert not PatternMatcher(["docs"]).exclusions


SINGLE = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("**", "/", True), ("**/", "/", True), ("**", "dir/file", True), ("**/", "dir/file", True),
    ("**", "dir/file/", True), ("**/", "dir/file/", True), ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True), ("dir/**", "dir/file", True), ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True), ("**file", "file", True),
    ("**file", "dir/file", True), ("**/file", "dir/file", True), ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True), ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False), ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False),
    ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
]
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]
ALL = [([p], t, e) for p, t, e in SINGLE] + MULTI


def _parents(text: str) -> list[str]:
    parent = clean(text.rsplit("/", 1)[0]) if "/" in text else "."
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[:i + 1]) for i in range(len(dirs))]


@pytest.mark.parametrize("patterns,text,expected", ALL, ids=lambda v: repr(v))
def test_matches_or_parent_matches(patterns: list[str], text: str, expected: bool) -> None:
    assert PatternMatcher(patterns).matches_or_parent_matches(text) is expected


@pytest.mark.parametrize("pattern,text,expected", SINGLE, ids=lambda v: repr(v))
def test_matches_using_parent_result(pattern: str, text: str, expected: bool) -> None:
    pm = PatternMatcher([pattern])
    parent = False
    for d in _parents(text):
        parent = pm.matches_using_parent_result(d, parent)
    assert pm.matches_using_parent_result(text, parent) is expected


@pytest.mark.parametrize("patterns,text,expected", ALL, ids=lambda v: repr(v))
def test_matches_using_parent_results(patterns: list[str], text: str, expected: bool) -> None:
    pm = PatternMatcher(patterns)
    info = MatchInfo()
    for d in _parents(text):
        _, info = pm.matches_using_parent_results(d, info)
    assert pm.matches_using_parent_results(text, info)[0] is expected
    assert pm.matches_using_parent_results(text, MatchInfo())[0] is expected


# Go's filepath.Match cases, through patternmatcher.Matches (as its TestMatch).
GO_MATCH = [
    ("abc", "abc", True, False), ("*", "abc", True, False), ("*c", "abc", True, False),
    ("a*", "a", True, False), ("a*", "abc", True, False), ("a*", "ab/c", True, False),
    ("a*/b", "abc/b", True, False), ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False), ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False), ("ab[b-d]", "abc", True, False),
    ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False), ("ab[^b-d]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False), ("a\\*b", "a*b", True, False), ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False), ("a[^a]b", "a☺b", True, False),
    ("a???b", "a☺b", False, False),
    ("a[^a][^a][^a]b", "a☺b", False, False), ("[a-ζ]*", "α", True, False),
    ("*[a-ζ]", "A", False, False), ("a?b", "a/b", False, False), ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False), ("[\\-]", "-", True, False), ("[x\\-]", "x", True, False),
    ("[x\\-]", "-", True, False), ("[x\\-]", "z", False, False), ("[\\-x]", "x", True, False),
    ("[\\-x]", "-", True, False), ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True), ("[-]", "-", False, True), ("[x-]", "x", False, True),
    ("[x-]", "-", False, True), ("[x-]", "z", False, True), ("[-x]", "x", False, True),
    ("[-x]", "-", False, True), ("[-x]", "a", False, True), ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True), ("[", "a", False, True), ("[^", "a", False, True),
    ("[^bc", "a", False, True), ("a[", "a", False, True), ("a[", "ab", False, True),
    ("*x", "xxx", True, False),
]


@pytest.mark.parametrize("pattern,text,expected,error", GO_MATCH, ids=lambda v: repr(v))
def test_go_match_cases(pattern: str, text: str, expected: bool, error: bool) -> None:
    if error:
        with pytest.raises(BadPattern):
            matches(text, [pattern])
    else:
        assert matches(text, [pattern]) is expected
        if "/" not in text:  # with one, patternmatcher also tries the parent ("a*" excludes "ab/c")
            assert filepath_match(pattern, text) is expected


def test_clean() -> None:
    cases = {"": ".", ".": ".", "/": "/", "//a//b/": "/a/b", "a/../..": "..", "/../a": "/a",
             "a/./b/../c": "a/c", "../../x": "../../x", "abc/": "abc"}
    for path, want in cases.items():
        assert clean(path) == want


def test_build_files_always_sent() -> None:
    ex = trim_build_files_from_excludes(["*", "!src"], "Dockerfile")
    assert ex == ["*", "!src", "!.dockerignore", "!Dockerfile"]
    assert trim_build_files_from_excludes(["*"], "Dockerfile", dockerfile_from_stdin=True) == [
        "*", "!.dockerignore"]
    assert trim_build_files_from_excludes(["foo"], "Dockerfile") == ["foo"]
    assert files_to_remove(["*", "!src"], "Dockerfile") == [".dockerignore", "Dockerfile"]
    assert files_to_remove(["Dockerfile"], "build/Dockerfile") == []
    assert files_to_remove(["build"], "build/Dockerfile") == ["build/Dockerfile"]


def test_walk_context(tmp_path: pathlib.Path) -> None:
    for f in ("Dockerfile", ".dockerignore", "a.go", "b.txt", "docs/README.md", "docs/x.md",
              "node_modules/m/index.js", "src/keep/k.go", "src/drop/d.go", "src/top.go"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text(f)
    ex = trim_build_files_from_excludes(
        read_ignore_file("# comment\n*.txt\nnode_modules\ndocs\n!docs/README.md\nsrc/*\n"
                         "!src/keep\n.dockerignore\n"), "Dockerfile")
    got = list(walk_context(str(tmp_path), ex))
    # docs/ itself is not sent, but entered for its exception; src/ is not excluded by src/*.
    assert got == [".dockerignore", "Dockerfile", "a.go", "docs/README.md", "src", "src/keep",
                   "src/keep/k.go"]
    # Without exceptions an excluded directory is not entered.
    flat = ["src", "docs", "node_modules", "*.*"]
    assert list(walk_context(str(tmp_path), flat)) == ["Dockerfile"]


def test_walk_context_as_docker_cli(tmp_path: pathlib.Path) -> None:
    # Pinned from docker CLI 28.2.2 + dockerd 20.10.24 (`COPY . /ctx/`, then the layer's
    # list; the daemon drops the matched Dockerfile and .dockerignore itself).
    for f in ("Dockerfile", "a.go", "b.txt", "docs/README.md", "docs/x.md",
              "node_modules/m/index.js", "src/keep/k.go", "src/drop/d.go", "src/top.go", "x+y",
              "xxy", "a[b", "deep/a/b/c.md", "deep/z.md"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text(f)
    ignore = ("# comment\n*.txt\nnode_modules\ndocs\n!docs/README.md\nsrc/*\n!src/keep\n"
              ".dockerignore\nDockerfile\nx+y\n**/*.md\n!deep/a\n")
    (tmp_path / ".dockerignore").write_text(ignore)
    excludes = trim_build_files_from_excludes(read_ignore_file(ignore), "Dockerfile")
    sent = list(walk_context(str(tmp_path), excludes))
    assert sent == [".dockerignore", "Dockerfile", "a.go", "a[b", "deep", "deep/a", "deep/a/b",
                    "src", "src/keep", "src/keep/k.go", "xxy"]
    removed = files_to_remove(read_ignore_file(ignore), "Dockerfile")
    assert removed == [".dockerignore", "Dockerfile"]
    # The 20.10 CLI matched each path alone: `!deep/a` re-includes deep/a/b/c.md.
    legacy = list(walk_context(str(tmp_path), excludes, legacy=True))
    assert [p for p in legacy if p not in sent] == ["deep/a/b/c.md"]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-c*?]{1,6}", fullmatch=True), st.from_regex(r"[a-c]{0,6}", fullmatch=True))
def test_go_match_agrees_with_fnmatch_without_slashes(pattern: str, name: str) -> None:
    # For names without `/` and patterns of * and ?, Go's Match is fnmatch.
    assert filepath_match(pattern, name) is fnmatch.fnmatchcase(name, pattern)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[ab*?/]{1,8}", fullmatch=True),
       st.from_regex(r"[ab]{1,3}(/[ab]{1,3}){0,3}", fullmatch=True))
def test_patternmatcher_agrees_with_go_match(pattern: str, name: str) -> None:
    # Without `**`, a pattern excludes a path iff Go's Match accepts the path or
    # one of its parents cut to the pattern's depth.
    pattern = clean(pattern)
    if "**" in pattern or pattern in (".", "/", "..") or pattern.startswith(("/", "../")):
        return
    depth = len(pattern.split("/"))
    parts = name.split("/")
    want = filepath_match(pattern, name) or (
        len(parts) > depth and filepath_match(pattern, "/".join(parts[:depth])))
    assert matches(name, [pattern]) is want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"!?[ab*]{1,3}(/[ab*]{1,3})?", fullmatch=True), max_size=4),
       st.from_regex(r"[ab]{1,2}(/[ab]{1,2}){0,2}", fullmatch=True))
def test_last_match_wins(patterns: list[str], name: str) -> None:
    # The answer is the kind of the last pattern that matches on its own.
    result = matches_or_parent_matches(name, patterns)
    last = None
    for p in patterns:
        core = p[1:] if p.startswith("!") else p
        if matches_or_parent_matches(name, [core]):
            last = not p.startswith("!")
    assert result is bool(last)
