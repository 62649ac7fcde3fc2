"""The Dockerfile parser, lexer, typed instructions and stage model
(dockyard.build.dockerfile), against buildkit's parser goldens and lexer
vectors (tests/data, from moby/buildkit v0.8.3, the version Docker 20.10
vendors) and against messages pinned from a real dockerd 20.10.24 with
DOCKER_BUILDKIT=0."""

from __future__ import annotations

import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.build.dockerfile import (
    AddInstruction, ArgInstruction, BuildArgs, CmdInstruction, CopyInstruction,
    DockerfileParseError, EntrypointInstruction, EnvInstruction, ExposeInstruction,
    HealthcheckInstruction, LabelInstruction, Lex, MaintainerInstruction, Mount,
    OnbuildInstruction, RunInstruction, ShellError, ShellInstruction, StopsignalInstruction,
    UserInstruction, VolumeInstruction, WorkdirInstruction, env_from_list, format_go_duration,
    go_duration, load, parse, parse_instruction, parse_mount, parse_trigger,
)
from dockyard.build.dockerfile.parser import parse_heredoc, parse_words
from dockyard.errors import InvalidParameter

DATA = pathlib.Path(__file__).parent / "data"
_CASES = sorted((DATA / "dockerfile_parser").iterdir())
GOLDEN = [p for p in _CASES if not p.name.startswith("negative-")]
NEGATIVE = [p for p in _CASES if p.name.startswith("negative-")]


# -- the line parser -------------------------------------------------------------------

@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.name)
def test_parser_goldens(case: pathlib.Path) -> None:
    result = parse((case / "Dockerfile").read_bytes())
    assert result.ast.dump() + "\n" == (case / "result").read_text()


@pytest.mark.parametrize("case", NEGATIVE, ids=lambda p: p.name)
def test_parser_negative(case: pathlib.Path) -> None:
    with pytest.raises(DockerfileParseError):
        parse((case / "Dockerfile").read_bytes())


def test_line_numbers() -> None:
    result = parse((DATA / "dockerfile_parser_lines.Dockerfile").read_bytes())
    assert (result.ast.start_line, result.ast.end_line) == (5, 31)
    assert [(c.start_line, c.end_line) for c in result.ast.children] == [(5, 5), (11, 12), (17, 31)]


def test_empty_continuation_lines_warn() -> None:
    df = ("\nFROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\n"
          "RUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n"
          "   after-comment\n\n"
          "RUN indented \\\n    # this is an indented comment\n    comment\n\t")
    result = parse(df)
    assert len(result.warnings) == 3
    assert "Empty continuation line found in" in result.warnings[0]
    assert "RUN something     following     more" in result.warnings[0]
    assert "RUN another     thing" in result.warnings[1]
    assert "will become errors in a future release" in result.warnings[2]
    # Comments inside a continuation are dropped, indented or not.
    assert [c.original for c in result.ast.children][-2:] == [
        "RUN non-indented    after-comment", "RUN indented     comment"]


@pytest.mark.parametrize("text,words", [
    ("foo", ["foo"]), ("foo bar", ["foo", "bar"]), ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]), ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']), ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
])
def test_parse_words(text: str, words: list[str]) -> None:
    assert parse_words(text) == words


def test_original_text_as_step_prints_it() -> None:
    # dockerd 20.10: `Step 2/3 : ENV a=1     b=2    c=3` (continuations joined as is).
    df = load("FROM scratch\nENV a=1 \\\n    b=2 \\\n\n   c=3\nONBUILD   RUN echo \"a  b\"\n")
    env, onbuild = df.stages[0].commands
    assert str(env) == "ENV a=1     b=2    c=3"
    assert (env.start_line, env.end_line) == (2, 5)
    assert str(onbuild) == 'ONBUILD   RUN echo "a  b"'
    assert isinstance(onbuild, OnbuildInstruction) and onbuild.expression == 'RUN echo "a  b"'
    assert df.stages[0].source_code == "FROM scratch"


def test_directives() -> None:
    r = parse("# escape=`\nFROM x\nRUN a `\n  b\n")
    assert r.escape_token == "`"
    assert r.ast.children[1].original == "RUN a   b"
    # Only before anything else: after a blank line it is a comment.
    r = parse("\n# escape=`\nFROM x\nRUN a \\\n  b\n")
    assert r.escape_token == "\\" and r.ast.children[1].original == "RUN a   b"
    # syntax= is recorded and ignored, with a warning.
    r = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n")
    assert r.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert any("syntax" in w for w in r.warnings)
    # An unknown directive ends the directives; the next one is a comment.
    r = parse("# foo=bar\n# escape=`\nFROM x\n")
    assert r.escape_token == "\\"
    with pytest.raises(DockerfileParseError, match="invalid escape token '!' does not match ` or"):
        parse("# escape=!\nFROM x\n")
    # A byte-order mark is skipped.
    assert parse(b"\xef\xbb\xbf# escape=`\nFROM x\n").escape_token == "`"


def test_json_and_shell_form() -> None:
    nodes = parse('FROM x\nRUN ["echo", "hi"]\nRUN [ "echo", \'x\' ]\nCMD ["a"] trailing\n'
                  'ENTRYPOINT []\nVOLUME ["/a", "/b"]\nVOLUME /c /d\n').ast.children
    assert nodes[1].is_json and nodes[1].args() == ["echo", "hi"]
    assert not nodes[2].is_json and nodes[2].args() == ["[ \"echo\", 'x' ]"]
    assert nodes[3].is_json and nodes[3].args() == ["a"]  # Go's decoder stops after the value
    assert nodes[4].is_json and nodes[4].args() == []
    assert nodes[5].args() == ["/a", "/b"] and nodes[6].args() == ["/c", "/d"]
    with pytest.raises(DockerfileParseError, match="arrays must be comprised of strings only"):
        parse('FROM x\nCMD ["a", 1]\n')


def test_crlf_and_no_final_newline() -> None:
    r = parse("FROM x\r\nRUN a \\\r\n b\r\nCMD c")
    assert [c.original for c in r.ast.children] == ["FROM x", "RUN a  b", "CMD c"]


def test_too_long_line() -> None:
    with pytest.raises(DockerfileParseError, match="greater than max allowed size of 65535"):
        parse("FROM x\nRUN " + "a" * 70000 + "\n")


# -- dockerd 20.10's messages ----------------------------------------------------------------

# Each pinned from dockerd 20.10.24 (`docker build`, DOCKER_BUILDKIT=0).
@pytest.mark.parametrize("dockerfile,message", [
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
    ("# only a comment\n", "failed to parse Dockerfile: file with no instructions"),
    ("FROM scratch\nENV foo\n", "failed to parse Dockerfile: ENV must have two arguments"),
    ("# escape=`\n# escape=\\\nFROM scratch\n",
     "failed to parse Dockerfile: only one escape parser directive can be used"),
    ("ENV a=b\nFROM scratch\n", "no build stage in current context"),
    ("FROM scratch\nSHELL /bin/sh\n",
     "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
    ("FROM scratch\nHEALTHCHECK --retries=x CMD a\n",
     'dockerfile parse error line 2: strconv.ParseInt: parsing "x": invalid syntax'),
    ("FROM scratch\nHEALTHCHECK --interval=5 CMD a\n",
     'dockerfile parse error line 2: time: missing unit in duration "5"'),
    ("FROM scratch\nHEALTHCHECK --interval=0s CMD true\n",
     'dockerfile parse error line 2: Interval "interval" cannot be less than 1ms'),
    ("FROM scratch AS 1x\n", 'dockerfile parse error line 1: invalid name for build stage: '
     '"1x", name can\'t start with a number or contain symbols'),
    ("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n",
     "dockerfile parse error line 3: unknown instruction: HI"),
    ("FROM scratch\nhello world\n", "dockerfile parse error line 2: unknown instruction: HELLO"),
])
def test_dockerd_messages(dockerfile: str, message: str) -> None:
    if "<<EOF" in dockerfile:
        # dockerd 20.10 has no heredocs; Dockyard does (the BuildKit extension).
        assert load(dockerfile).stages[0].commands[0].source_contents[0].data == "hi\n"
        return
    with pytest.raises(InvalidParameter) as e:
        load(dockerfile)
    assert str(e.value) == message


@pytest.mark.parametrize("line,message", [
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("USER", "USER requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("ENV", "ENV requires at least one argument"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ("ARG", "ARG requires at least one argument"),
    ("SHELL", "SHELL requires at least one argument"),
    ("ADD arg1", "ADD requires at least two arguments, but only one was provided. "
                 "Destination could not be determined."),
    ("COPY arg1", "COPY requires at least two arguments, but only one was provided. "
                  "Destination could not be determined."),
    ("COPY\t\n\t\tquux \\\n      bar", "COPY requires at least two arguments"),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL =x", "LABEL names can not be blank"),
    ("ARG =x", "ARG names can not be blank"),
    ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER docker.io", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("MAINTAINER --boo joe@example.com", "Unknown flag: boo"),
    ("foo bar", "unknown instruction: FOO"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a as b c", "FROM requires either one or three arguments"),
    ("FROM --foo=x a", "Unknown flag: foo"),
    ("COPY --link a b", None),  # a BuildKit extension (dockerd 20.10: Unknown flag: link)
    ("COPY --from a b", "Missing a value on flag: from"),
    ("COPY --chown=1 --chown=2 a b", "Duplicate flag specified: chown"),
    ("COPY --link=maybe a b", "Expecting boolean value for flag link, not: maybe"),
    ("COPY --link= a b", "Missing a value on flag: link"),
    ("COPY -x a b", None),  # not a flag: one dash starts the arguments
    ("RUN --network=bridge true", 'invalid network mode "bridge"'),
    ("RUN --mount=type=foo true", 'unsupported mount type "foo"'),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
    ("HEALTHCHECK --timeout=50ns CMD x", 'Interval "timeout" cannot be less than 1ms'),
    ("HEALTHCHECK --start-period=1x CMD x", 'time: unknown unit "x" in duration "1x"'),
    ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
    ("HEALTHCHECK --start-interval=1s CMD x", "Unknown flag: start-interval"),
    ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
])
def test_instruction_errors(line: str, message: str | None) -> None:
    node = parse(line).ast.children[0]
    if message is None:
        parse_instruction(node)
        return
    with pytest.raises(InvalidParameter) as e:
        parse_instruction(node)
    assert str(e.value).startswith(message)


def test_stopsignal_and_arg_never_parse_flags() -> None:
    # dockerd prints `Step 4/7 : STOPSIGNAL --foo 9` and goes on.
    node = parse("STOPSIGNAL --foo 9").ast.children[0]
    assert node.flags == ["--foo"] and node.args() == ["9"]
    sig = parse_instruction(node)
    assert isinstance(sig, StopsignalInstruction) and sig.signal == "9"
    arg = parse_instruction(parse("ARG --x A").ast.children[0])
    assert isinstance(arg, ArgInstruction) and [a.key for a in arg.args] == ["A"]


# -- typed instructions ------------------------------------------------------------------------

def one(line: str):  # type: ignore[no-untyped-def]
    return parse_instruction(parse(line).ast.children[0])


def test_typed_instructions() -> None:
    # The legacy form is decided by the first word only.
    with pytest.raises(DockerfileParseError, match="Syntax error - can't find = in \"c\""):
        parse("ENV a=1 c")
    env = one("ENV a=1 b='two words'")
    assert isinstance(env, EnvInstruction)
    assert [(kv.key, kv.value) for kv in env.env] == [("a", "1"), ("b", "'two words'")]
    legacy = one("ENV key   the rest  of it")
    assert [(kv.key, kv.value) for kv in legacy.env] == [("key", "the rest  of it")]
    label = one('LABEL "com.x"="y z" k=v')
    assert isinstance(label, LabelInstruction)
    assert [(kv.key, kv.value) for kv in label.labels] == [('"com.x"', '"y z"'), ("k", "v")]
    assert isinstance(one("MAINTAINER Joe <j@x>"), MaintainerInstruction)
    copy = one("COPY --from=build --chown=app:app --chmod=644 --link a b /dst/")
    assert isinstance(copy, CopyInstruction)
    assert (copy.from_, copy.chown, copy.chmod, copy.link) == ("build", "app:app", "644", True)
    assert (copy.sources, copy.dest) == (["a", "b"], "/dst/")
    copy = one('COPY ["a b", "/d"]')
    assert (copy.sources, copy.dest) == (["a b"], "/d")
    add = one("ADD --chown=1 http://x/y.tgz /")
    assert isinstance(add, AddInstruction)
    assert add.chown == "1" and add.sources == ["http://x/y.tgz"]
    run = one("RUN echo hi")
    assert isinstance(run, RunInstruction)
    assert (run.cmd_line, run.prepend_shell, run.flags_used) == (["echo hi"], True, [])
    run = one('RUN ["echo", "hi"]')
    assert (run.cmd_line, run.prepend_shell) == (["echo", "hi"], False)
    run = one("RUN --mount=type=cache,target=/root/.cache --network=none "
              "--mount=type=tmpfs,dst=/t x")
    assert run.flags_used == ["mount", "network"] and run.network == "none"
    assert run.mounts == [Mount(type="cache", target="/root/.cache", readonly=False),
                          Mount(type="tmpfs", target="/t", readonly=False)]
    cmd = one("CMD")
    assert isinstance(cmd, CmdInstruction) and cmd.cmd_line == []
    ep = one("ENTRYPOINT")
    assert isinstance(ep, EntrypointInstruction) and ep.cmd_line is None
    assert one("ENTRYPOINT []").cmd_line is None
    expose = one("EXPOSE 8080/udp 80 443")
    assert isinstance(expose, ExposeInstruction) and expose.ports == ["443", "80", "8080/udp"]
    assert isinstance(one("USER app:app"), UserInstruction)
    assert one('VOLUME ["/a", " /b "]').volumes == ["/a", "/b"]
    assert isinstance(one("WORKDIR /a b"), WorkdirInstruction)
    arg = one("ARG a b=2 c=")
    assert [(a.key, a.value) for a in arg.args] == [("a", None), ("b", "2"), ("c", "")]
    shell = one('SHELL ["/bin/bash", "-c"]')
    assert isinstance(shell, ShellInstruction) and shell.shell == ["/bin/bash", "-c"]
    fr = one("FROM --platform=linux/amd64 Busybox:1 AS Build")
    assert (fr.base_name, fr.stage_name, fr.platform) == ("Busybox:1", "build", "linux/amd64")


def test_healthcheck() -> None:
    hc = one("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=1.5s --retries=3 "
             "CMD curl -f http://x/ || exit 1")
    assert isinstance(hc, HealthcheckInstruction)
    assert hc.health.to_config() == {
        "Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"], "Interval": 90_000_000_000,
        "Timeout": 3_000_000_000, "StartPeriod": 1_500_000_000, "Retries": 3}
    assert one('HEALTHCHECK CMD ["a", "b"]').health.test == ["CMD", "a", "b"]
    assert one("healthcheck none").health.to_config() == {"Test": ["NONE"]}
    assert one("HEALTHCHECK CMD hello world").health.test == ["CMD-SHELL", "hello world"]


def test_go_durations() -> None:
    assert go_duration("1h2m3.5s") == 3_723_500_000_000
    assert go_duration("1ms") == 1_000_000 and go_duration("0") == 0
    assert go_duration("1.5µs") == 1500 and go_duration("-2s") == -2_000_000_000
    for bad in ("", "1", "s", ".s", "1x", "1s2"):
        with pytest.raises(InvalidParameter, match="^time: "):
            go_duration(bad)
    assert [format_go_duration(x) for x in (0, 1_500_000_000, 90_000_000_000, 1_000_000, 1)] == [
        "0s", "1.5s", "1m30s", "1ms", "1ns"]


@pytest.mark.parametrize("spec,expected", [
    ("target=/x", Mount(type="bind", target="/x", readonly=True)),
    ("type=bind,source=/s,target=/x,rw",
     Mount(type="bind", source="/s", target="/x", readonly=False)),
    ("type=cache,target=/c,id=k,sharing=locked,mode=0700,uid=1,gid=2",
     Mount(type="cache", target="/c", cache_id="k", cache_sharing="locked", readonly=False,
           mode=0o700, uid=1, gid=2)),
    ("type=secret,id=tok,required", Mount(type="secret", cache_id="tok", required=True)),
    ("type=cache,target=/c,ro=true", Mount(type="cache", target="/c", readonly=True)),
    ("type=bind,from=build,src=/out,dst=/in", Mount(from_="build", source="/out", target="/in")),
])
def test_mount_specs(spec: str, expected: Mount) -> None:
    assert parse_mount(spec) == expected


@pytest.mark.parametrize("spec,message", [
    ("type=bind,mode=0700", 'mode not allowed for "bind" type mounts'),
    ("type=tmpfs,uid=1", 'uid not allowed for "tmpfs" type mounts'),
    ("type=cache,mode=9", "invalid value 9 for mode"),
    ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=cache,sharing=x", 'unsupported sharing value "x"'),
    ("type=cache,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
    ("type=cache,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=cache,ro=maybe", "invalid value for ro: maybe"),
    ("type=secret,from=x,id=y", "secret mount should not have a from"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,src=a,id=b", "both source and id can't be set"),
])
def test_mount_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_mount(spec)
    assert str(e.value) == message


# -- heredocs (BuildKit's extension) ------------------------------------------------------------

def test_heredocs() -> None:
    df = load('FROM x\nRUN <<EOF\necho "$HOME"\nEOF\n'
              'COPY <<-"EOT" <<two /dst/\n\tnot $expanded\n\tEOT\nsecond\ntwo\n'
              "RUN python3 <<'PY' > out\nprint(1)\nPY\n"
              'RUN ["echo", "<<EOF"]\nCMD <<EOF\n')
    run, copy, py, json_run, cmd = df.stages[0].commands
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == 'echo "$HOME"\n'
    assert run.heredocs[0].expand and run.cmd_line == ["<<EOF"]
    assert (run.start_line, run.end_line) == (2, 4)
    assert copy.sources == [] and copy.dest == "/dst/"
    first, second = copy.source_contents
    assert (first.path, first.data, first.expand) == ("EOT", "not $expanded\n", False)
    assert (second.path, second.data, second.expand) == ("two", "second\n", True)
    assert py.heredocs[0].name == "PY" and not py.heredocs[0].expand
    assert py.cmd_line == ["python3 <<'PY' > out"]
    assert json_run.heredocs == [] and cmd.cmd_line == ["<<EOF"]  # only ADD/COPY/RUN
    with pytest.raises(DockerfileParseError, match="unterminated heredoc"):
        load("FROM x\nRUN <<EOF\necho\n")
    onbuild = load("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\n").stages[0].commands[0]
    assert onbuild.expression == "RUN <<EOF"


@pytest.mark.parametrize("word,expected", [
    ("<<EOF", ("EOF", True, False, 0)), ("<<-EOF", ("EOF", True, True, 0)),
    ("<<'EOF'", ("EOF", False, False, 0)), ('<<"EOF"', ("EOF", False, False, 0)),
    ("3<<EOF", ("EOF", True, False, 3)), ("<<E'O'F", ("EOF", False, False, 0)),
    ("<<", None), ("<<EOF<<", None), ("cat", None),
])
def test_parse_heredoc(word: str, expected: tuple | None) -> None:
    h = parse_heredoc(word)
    got = None if h is None else (h.name, h.expand, h.chomp, h.file_descriptor)
    assert got == expected


# -- the lexer -----------------------------------------------------------------------------------

def _env_var_cases() -> list[tuple[int, str, str]]:
    out = []
    for n, line in enumerate((DATA / "shell_envvars.txt").read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (w.strip() for w in line.strip().split("|"))
        if platform in ("A", "U"):
            out.append((n, source, expected))
    return out


def test_env_var_vectors() -> None:
    lex = Lex()
    env = env_from_list(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="])
    cases = _env_var_cases()
    assert len(cases) > 200
    for n, source, expected in cases:
        if expected == "error":
            with pytest.raises(ShellError):
                lex.process_word(source, env)
        else:
            assert lex.process_word(source, env) == expected, f"line {n}: {source}"


@pytest.mark.parametrize("raw", [False, True])
def test_words_vectors(raw: bool) -> None:
    lex = Lex(raw_quotes=raw, skip_unset_env=raw)
    envs: list[str] = []
    for n, line in enumerate((DATA / "shell_words.txt").read_text().splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            envs.append(line[3:].lstrip(" "))
            continue
        test, expected = line.split("|")
        try:
            result = lex.process_words(test.strip(), env_from_list(envs))
        except ShellError:
            result = ["error"]
        if not raw:
            assert result == expected.lstrip(" ").split(","), f"line {n}: {test}"
        elif "'" not in test and '"' not in test and "${" not in test and "error" not in expected:
            assert result == expected.lstrip(" ").split(","), f"line {n}: {test}"


def _env(**kw: str) -> dict[str, str]:
    return dict(kw)


@pytest.mark.parametrize("word,env,expected", [
    # dockerd 20.10's forms.
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", _env(FOO="xxx", BAR=""), "xxx bbb ccc"),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", _env(FOO="xxx", BAR=""), "aaa  "),
    ("${FOO?aaa}", _env(FOO="xxx"), "xxx"),
    ("${BAR?bbb}", _env(BAR=""), ""),
    ("${FOO:?aaa}", _env(FOO="xxx"), "xxx"),
    ("${FOO:-}", _env(FOO="xxx"), "xxx"),
    ("${FOO:-}", _env(), ""),
    # The newer forms dockerd 20.10 refuses (`missing ':' in substitution`).
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", _env(FOO="xxx", BAR=""), "xxx  ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", _env(FOO="xxx", BAR=""), "aaa bbb "),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", _env(FOO="()[]{}^$.*?|\\x"), "x"),
    ("${FOO%%\\**}", _env(FOO="xx**"), "xx"),
    ("${FOO#*x*y}", _env(FOO="xxyy"), "y"),
    ("${FOO#*}", _env(FOO="xxyy"), "xxyy"),
    ("${FOO#$BAR}", _env(FOO="xxyy", BAR="x"), "xyy"),
    ("${FOO#$BAR}", _env(FOO="xxyy", BAR=""), "xxyy"),
    ("${FOO#}", _env(FOO="xxyy"), "xxyy"),
    ("${FOO##*x}", _env(FOO="xxyy"), "yy"),
    ("${FOO##}", _env(FOO="xxyy"), "xxyy"),
    ("${FOO#?\\?}", _env(FOO="???y"), "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", _env(FOO="xxyy"), ".xxyy."),
    ("${FOO%%\\**\\*}", _env(FOO="a***yy*"), "a"),
    ("${FOO%}", _env(FOO="xxyy"), "xxyy"),
    ("${FOO%y*}", _env(FOO="xxyy"), "xxy"),
    ("${FOO%%y*}", _env(FOO="xxyy"), "xx"),
    ("${FOO%%$BAR}", _env(FOO="xxyy", BAR=""), "xxyy"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", _env(FOO="/foo*/*/*.txt", NEEDLE="\\*/"),
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", _env(FOO="/tmp/tmp/bar.txt", NEEDLE="/tmp"),
     "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     _env(FOO="/a/foo/b/c.txt", NEEDLE="/?/", REPLACEMENT="/"), "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT}",
     _env(FOO="http://google.de", NEEDLE="http://", REPLACEMENT="https://"), "https://google.de"),
    ("${FOO//\\//\\/}", _env(FOO="/tmp/foo.txt"), "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", _env(FOO="xxyy", BAR=""), "wwxxyy"),
    ("${FOO///}", _env(FOO="xxyy"), "xxyy"),
    ("${FOO///}", _env(), ""),
    ("${FOO/x/$1}", _env(FOO="xy"), "y"),
])
def test_expansion_forms(word: str, env: dict[str, str], expected: str) -> None:
    assert Lex().process_word(word, env) == expected


@pytest.mark.parametrize("word,message", [
    # dockerd 20.10's words, pinned.
    ("${a:=w}", 'failed to process "${a:=w}": unsupported modifier (=) in substitution'),
    ("${a=w}", 'failed to process "${a=w}": missing \':\' in substitution'),
    ("${a", 'failed to process "${a": missing \':\' in substitution'),
    ("${", "failed to process \"${\": syntax error: missing '}'"),
    ("${}", 'failed to process "${}": syntax error: bad substitution'),
    ("${:-x}", 'failed to process "${:-x}": syntax error: bad substitution'),
    ("${a:-x", "failed to process \"${a:-x\": syntax error: missing '}'"),
    ("${BAZ?ccc}", 'failed to process "${BAZ?ccc}": BAZ: ccc'),
    ("${BAZ:?}", 'failed to process "${BAZ:?}": BAZ: is not allowed to be unset'),
    ("${BAR:?}", 'failed to process "${BAR:?}": BAR: is not allowed to be empty'),
    ("${BAR:?bbb}", 'failed to process "${BAR:?bbb}": BAR: bbb'),
    ("'abc", 'failed to process "\'abc": '
             "unexpected end of statement while looking for matching single-quote"),
    ('"abc', 'failed to process "\\"abc": '
             "unexpected end of statement while looking for matching double-quote"),
    ("${FOO:#}", 'failed to process "${FOO:#}": unsupported modifier (#) in substitution'),
    ("${FOO:%%}", 'failed to process "${FOO:%%}": unsupported modifier (%) in substitution'),
    ("${FOO//ww}", "failed to process \"${FOO//ww}\": syntax error: missing '/' in ${}"),
    ("${FOO//}", "failed to process \"${FOO//}\": syntax error: missing '/' in ${}"),
    ("${FOO#\\x}", 'failed to process "${FOO#\\\\x}": invalid pattern (\\x) in substitution: '
                   "invalid escape '\\x'"),
])
def test_expansion_errors(word: str, message: str) -> None:
    with pytest.raises(ShellError) as e:
        Lex().process_word(word, {"BAR": "", "FOO": "xxyy"})
    assert str(e.value) == message


def test_mandatory_vars_expand_their_message() -> None:
    lex = Lex()
    assert lex.process_word("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}) == "plain"
    with pytest.raises(ShellError, match="message herex"):
        lex.process_word("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert lex.process_word("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""


def test_backtick_escape_and_words() -> None:
    lex = Lex(escape_token="`")
    assert lex.process_word("a`$b `\\c", {"b": "B"}) == "a$b \\c"
    assert Lex().process_words("$P 443", {"P": "80  8080"}) == ["80", "8080", "443"]
    assert Lex().process_words('"$P" 443', {"P": "80  8080"}) == ["80  8080", "443"]
    _, found, missing = Lex().process_word_with_matches("${A} $B ${C:-x}", {"A": "1"})
    assert (found, missing) == ({"A"}, {"B", "C"})


_plain = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_plain)
def test_escaped_words_round_trip(s: str) -> None:
    # Escaping every character gives the text back, as one word.
    assert Lex().process_word("".join("\\" + c for c in s), {}) == s


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="'"),
               max_size=40))
def test_single_quotes_keep_everything(s: str) -> None:
    assert Lex().process_word("'" + s + "'", {"x": "y"}) == s


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab ${}:-+?#%/\\'\"*", max_size=20))
def test_lexer_fails_only_with_shell_errors(s: str) -> None:
    try:
        Lex().process_word(s, {"a": "x y", "b": ""})
        Lex().process_words(s, {"a": "x y", "b": ""})
    except ShellError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=10),
                max_size=5))
def test_exec_form_round_trip(args: list[str]) -> None:
    run = parse_instruction(parse("RUN " + json.dumps(args)).ast.children[0])
    assert run.cmd_line == args and not run.prepend_shell


@settings(max_examples=150, deadline=None)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9 ]{0,8}[a-z]", fullmatch=True), min_size=1, max_size=6))
def test_continuations_join_lines(parts: list[str]) -> None:
    text = "FROM x\nRUN " + " \\\n".join(parts) + "\n"
    node = parse(text).ast.children[1]
    assert node.original == "RUN " + " ".join(parts)
    assert (node.start_line, node.end_line) == (2, 1 + len(parts))


# -- expansion by instruction ---------------------------------------------------------------

def test_instructions_expand_as_dockerd() -> None:
    df = load("FROM x\nENV abc=hello\nENV abc=bye def=$abc\nRUN echo $abc\nCMD $abc\n"
              "ENTRYPOINT $abc\nCOPY --chown=$abc --from=$abc $abc /$abc/\nWORKDIR /$abc\n"
              "USER $abc\nVOLUME $abc\nSTOPSIGNAL $abc\nLABEL $abc=$abc\nEXPOSE $ports\n"
              "MAINTAINER $abc\nHEALTHCHECK CMD $abc\nONBUILD RUN $abc\n")
    env = {"abc": "hello", "ports": "80 443/udp"}
    lex = df.lex()
    cmds = df.stages[0].commands
    fn = lambda w: lex.process_word(w, env)  # noqa: E731
    # One instruction sees the values from before it.
    env_now = cmds[1].expand(fn).env
    assert [(kv.key, kv.value) for kv in env_now] == [("abc", "bye"), ("def", "hello")]
    for c in cmds[2:5]:  # RUN, CMD, ENTRYPOINT never expand
        assert c.expand(fn).cmd_line == ["echo $abc"] or c.expand(fn).cmd_line == ["$abc"]
    copy = cmds[5].expand(fn)
    assert (copy.chown, copy.from_) == ("hello", "$abc")
    assert (copy.sources, copy.dest) == (["hello"], "/hello/")
    assert cmds[6].expand(fn).path == "/hello"
    assert cmds[7].expand(fn).user == "hello"
    assert cmds[8].expand(fn).volumes == ["hello"]
    assert cmds[9].expand(fn).signal == "hello"
    assert cmds[10].expand(fn).labels[0].key == "hello"
    assert cmds[11].expand_ports(lambda w: lex.process_words(w, env)).ports == ["80", "443/udp"]
    assert cmds[12].expand(fn).maintainer == "$abc"
    assert cmds[13].expand(fn).health.test == ["CMD-SHELL", "$abc"]
    assert cmds[14].expand(fn).expression == "RUN $abc"


# -- stages, targets, build args --------------------------------------------------------------

MULTI = """\
ARG BASE=busybox
ARG TAG
FROM $BASE AS base
RUN build
FROM scratch AS Unused
COPY x /
FROM base AS mid
FROM ${BASE}:${TAG:-latest} AS other
FROM scratch AS final
COPY --from=mid /a /a
COPY --from=0 /b /b
COPY --from=other /c /c
COPY --from=later /d /d
FROM scratch AS later
"""


def test_stages_and_targets() -> None:
    df = load(MULTI)
    assert [s.name for s in df.stages] == ["base", "unused", "mid", "other", "final", "later"]
    assert [a.args[0].key for a in df.meta_args] == ["BASE", "TAG"]
    assert df.target_index("FINAL") == 4
    with pytest.raises(InvalidParameter, match="^failed to reach build target nope in Dockerfile$"):
        df.stages_up_to("nope")
    assert [s.name for s in df.stages_up_to("final")] == ["base", "unused", "mid", "other", "final"]
    # `later` comes after final: COPY --from=later names an image, as in dockerd.
    assert [s.name for s in df.needed_stages("final")] == ["base", "mid", "other", "final"]
    assert [s.name for s in df.needed_stages("mid")] == ["base", "mid"]
    assert [s.name for s in df.needed_stages()] == ["later"]
    # FROM names a stage after meta-ARG expansion.
    by_arg = load("ARG B=one\nFROM x AS one\nFROM $B\n")
    assert [s.name for s in by_arg.needed_stages()] == ["one", ""]
    assert [s.name for s in by_arg.needed_stages(build_args={"B": "alpine"})] == [""]
    assert df.total_steps() == 2 + 6 + 6
    assert df.step_texts("mid") == [
        "Step 1/7 : ARG BASE=busybox", "Step 2/7 : ARG TAG", "Step 3/7 : FROM $BASE AS base",
        "Step 4/7 : RUN build", "Step 5/7 : FROM scratch AS Unused", "Step 6/7 : COPY x /",
        "Step 7/7 : FROM base AS mid"]
    # RUN --mount=from= (BuildKit's extension) needs its stage too; a reused name
    # refers to the first stage of that name, and dockerd refuses the second.
    dup = load("FROM a AS x\nFROM b AS x\nFROM c\nRUN --mount=from=x,target=/m true\n")
    assert [s.index for s in dup.needed_stages()] == [0, 2]
    assert dup.duplicate_stage_name(dup.stages[1]) == "x stage name already used"
    assert dup.duplicate_stage_name(dup.stages[0]) == ""
    assert df.total_steps("mid") == 2 + 3 + 2


def test_labels_option() -> None:
    # dockerd: sorted, unexpanded, appended to the last stage built, counted as steps.
    df = load("ARG X=1\nFROM scratch AS a\nFROM scratch AS b\n")
    df = df.with_labels({"zz": "1", "aa": "$X 2"}, "a")
    assert len(df.stages) == 1
    assert [str(c) for c in df.stages[0].commands] == ["LABEL aa=$X 2", "LABEL zz=1"]
    assert df.stages[0].commands[0].expand(lambda w: "EXPANDED").labels[0].value == "$X 2"
    assert df.total_steps() == 4


def test_meta_args_reach_from_only() -> None:
    df = load(MULTI)
    assert df.meta_arg_values({}) == {"BASE": "busybox"}
    assert df.meta_arg_values({"TAG": "1", "HTTP_PROXY": "p"}) == {
        "BASE": "busybox", "TAG": "1", "HTTP_PROXY": "p"}
    assert load("ARG A=x\nARG B=${A}y\nFROM s\n").meta_arg_values({}) == {"A": "x", "B": "xy"}


def test_build_args_scoping() -> None:
    opts = {"FOO": "opt", "HTTP_PROXY": "proxy", "UNSET": None, "LEFT": "1"}
    glob = BuildArgs(opts)
    glob.add_arg("META", "m")
    glob.add_meta_arg("META", "m")
    stage = glob.for_stage()
    # Undeclared args are invisible, except the proxy builtins given as options.
    assert stage.get_all_allowed() == {"HTTP_PROXY": "proxy"}
    stage.add_arg("FOO", "default")
    stage.add_arg("META", None)  # re-declared without a default: takes the meta value
    stage.add_arg("BARE", None)
    assert stage.get_all_allowed() == {"FOO": "opt", "META": "m", "HTTP_PROXY": "proxy"}
    assert not stage.is_referenced_or_not_builtin("HTTP_PROXY")
    assert stage.is_referenced_or_not_builtin("FOO")
    # Env set in the config wins over args; the expansion env has both.
    assert stage.filter_allowed(["FOO=env"]) == ["HTTP_PROXY=proxy", "META=m"]
    assert stage.expansion_env(["FOO=env", "PATH=/bin"]) == {
        "FOO": "env", "PATH": "/bin", "HTTP_PROXY": "proxy", "META": "m"}
    # RUN's `|N K=V` prefix: declared args only, sorted; undeclared proxies still force `|0`.
    assert stage.run_cmd_prefix(["FOO=env"]) == ["|1", "META=m"]
    only_proxy = BuildArgs({"http_proxy": "p"}).for_stage()
    assert only_proxy.run_cmd_prefix([]) == ["|0"]
    assert BuildArgs({}).run_cmd_prefix([]) == []
    glob.merge_referenced(stage)
    # dockerd: `[Warning] One or more build-args [BAR FOO] were not consumed` (UNSET counts too).
    assert glob.unused_warning() == (
        "[Warning] One or more build-args [LEFT UNSET] were not consumed\n")
    assert BuildArgs({"HTTP_PROXY": "x"}).unused_warning() == ""


def test_run_prefix_as_dockerd() -> None:
    # dockerd 20.10.24, `--build-arg HTTP_PROXY=hp --build-arg http_proxy=lp --build-arg
    # DECL=x --build-arg NOPE`: history `|0 /bin/sh -c echo two`, then after
    # `ARG http_proxy`, `|1 http_proxy=lp /bin/sh -c echo three`; NOPE not consumed.
    df = load("FROM bb\nARG DECL=d\nRUN echo one\nFROM bb\nRUN echo two\nARG http_proxy\n"
              "RUN echo three\n")
    glob = BuildArgs({"HTTP_PROXY": "hp", "http_proxy": "lp", "DECL": "x", "NOPE": None})
    prefixes = []
    for stage in df.stages:
        args = glob.for_stage()
        for c in stage.commands:
            if isinstance(c, ArgInstruction):
                for a in c.args:
                    args.add_arg(a.key, a.value)
            elif isinstance(c, RunInstruction):
                prefixes.append(args.run_cmd_prefix([]))
        glob.merge_referenced(args)
    assert prefixes == [["|1", "DECL=x"], ["|0"], ["|1", "http_proxy=lp"]]
    assert glob.unused_warning() == "[Warning] One or more build-args [NOPE] were not consumed\n"
    assert df.step_texts()[-1] == "Step 7/7 : RUN echo three"


def test_onbuild_triggers() -> None:
    assert isinstance(parse_trigger("RUN echo hi"), RunInstruction)
    with pytest.raises(InvalidParameter, match="single expression"):
        parse_trigger("RUN a\nRUN b")
    with pytest.raises(InvalidParameter, match="unknown instruction: BAD"):
        parse_trigger("BAD x")


def test_comments_kept_for_args() -> None:
    df = load("# foo sets foo\nARG foo=bar\n\n# base defines first stage\nFROM busybox AS base\n"
              "# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\n"
              "ARG bar baz=123\n")
    assert df.meta_args[0].comments == ["foo sets foo"]
    assert df.stages[0].from_.comments == ["base defines first stage"]
    assert df.stages[0].commands[1].comments == ["bar defines bar", "baz is something else"]


def _simulate(df_text: str, build_args: dict[str, str | None]) -> dict:
    """What a classic build's config gets from metadata instructions, driven
    through the public API the executor uses."""
    df = load(df_text)
    lex = df.lex()
    glob = BuildArgs(build_args)
    for meta in df.meta_args:
        meta = meta.expand(lambda w: lex.process_word(w, glob.get_all_allowed()))
        for a in meta.args:
            glob.add_arg(a.key, a.value)
            glob.add_meta_arg(a.key, a.value)
    config: dict = {}
    for stage in df.stages:
        args = glob.for_stage()
        env: list[str] = []
        config = {"Env": env, "Labels": {}, "ExposedPorts": []}
        for ins in stage.commands:
            scope = args.expansion_env(env)
            if isinstance(ins, ExposeInstruction):
                ins = ins.expand_ports(lambda w: lex.process_words(w, scope))
                config["ExposedPorts"] += ins.ports
                continue
            ins = ins.expand(lambda w: lex.process_word(w, scope))
            if isinstance(ins, EnvInstruction):
                for kv in ins.env:
                    env[:] = [e for e in env if e.partition("=")[0] != kv.key] + [str(kv)]
            elif isinstance(ins, ArgInstruction):
                for a in ins.args:
                    args.add_arg(a.key, a.value)
            elif isinstance(ins, LabelInstruction):
                config["Labels"].update({kv.key: kv.value for kv in ins.labels})
            elif isinstance(ins, WorkdirInstruction):
                config["WorkingDir"] = ins.path
            elif isinstance(ins, UserInstruction):
                config["User"] = ins.user
            elif isinstance(ins, VolumeInstruction):
                config["Volumes"] = ins.volumes
            elif isinstance(ins, StopsignalInstruction):
                config["StopSignal"] = ins.signal
        glob.merge_referenced(args)
    config["warning"] = glob.unused_warning()
    return config


def test_metadata_expansion_as_dockerd() -> None:
    # Built with dockerd 20.10.24 (`--build-arg A=7 --build-arg UNUSED=1`); its config:
    # "User":"bye:x","ExposedPorts":{"7443/tcp":{},"80/tcp":{}},"Env":["PATH=…","abc=bye",
    # "def=hello","ghi=bye","q=a  b","r=a$b","s=$abc","t=set","u=dflt","w=x y",
    # "legacy=v  bye  $x"],"Volumes":{"/v/bye":{}},"WorkingDir":"/a/bye",
    # "Labels":{"k 1":"v bye","k2":"7"},"StopSignal":"SIGKILL"
    df = ("# escape=`\nARG A=1\nFROM scratch\nARG A\nARG B=\"x y\"\nENV abc=hello\n"
          "ENV abc=bye def=$abc\n"
          "ENV ghi=$abc q=\"a  b\" r=a`$b s='$abc' t=${A:+set} u=${nope:-dflt} w=\"${B}\"\n"
          "ENV legacy  v  $abc  `$x\nLABEL \"k 1\"=\"v $abc\" k2=${A}\nEXPOSE 80 ${A}443/tcp\n"
          "WORKDIR /a/$abc\nUSER ${abc}:x\nVOLUME [\"/v/$abc\"]\nSTOPSIGNAL SIG${abc:+KILL}")
    config = _simulate(df, {"A": "7", "UNUSED": "1"})
    assert config["Env"] == ["abc=bye", "def=hello", "ghi=bye", "q=a  b", "r=a$b", "s=$abc",
                             "t=set", "u=dflt", "w=x y", "legacy=v  bye  $x"]
    assert config["Labels"] == {"k 1": "v bye", "k2": "7"}
    assert sorted(config["ExposedPorts"]) == ["7443/tcp", "80"]
    assert (config["WorkingDir"], config["User"]) == ("/a/bye", "bye:x")
    assert config["StopSignal"] == "SIGKILL"
    assert config["Volumes"] == ["/v/bye"]
    assert config["warning"] == "[Warning] One or more build-args [UNUSED] were not consumed\n"


_WORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK", "CMD",
          "SHELL", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER", "AS",
          "--from=a", "--chown=", "--mount=type=cache,target=/x", "--interval=1s", "<<EOF",
          "<<-'E'", "EOF", "E", "\tE", "$x", "${x:-y}", "${", "[", "]", '"', "'", "=", "a=b",
          "\\", "`", "#", "# escape=`", "\n", "\n", "\n", " ", " ", "\t", "NONE", "x", "[\"a\"]"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=30))
def test_load_fails_only_with_dockerd_errors(words: list[str]) -> None:
    text = " ".join(words)
    try:
        df = load(text)
    except InvalidParameter:
        return
    for stage in df.stages:
        assert stage.commands is not None
        for c in stage.commands:
            assert c.start_line <= c.end_line
            try:
                c.expand(lambda w: Lex(escape_token=df.escape_token).process_word(w, {"x": "1"}))
            except ShellError:
                pass
