"""The Dockerfile parser: directives, continuations, flags, forms, stages and error line numbers."""

from __future__ import annotations

import pytest

from engine.dockerfile.parser import parse
from engine.errors import DockerfileError


def test_parse_splits_stages_and_keeps_line_numbers() -> None:
    df = parse("ARG V=1\nFROM busybox:$V AS Build\n\nRUN echo hi\nFROM scratch\nCOPY --from=build /a /b\n")
    assert [a.args for a in df.global_args] == ["V=1"]
    first, second = df.stages
    assert (first.base, first.name, first.line) == ("busybox:$V", "build", 2)
    assert [(i.keyword, i.line) for i in first.instructions] == [("RUN", 4)]
    assert second.base == "scratch" and second.name is None
    copy = second.instructions[0]
    assert copy.flag("from") == "build" and copy.args == "/a /b" and copy.line == 6


def test_continuations_join_lines_and_skip_comments_inside() -> None:
    df = parse("FROM busybox\nRUN echo a \\\n# a comment\n\n    && echo b\nCMD x\n")
    run, cmd = df.stages[0].instructions
    assert run.args == "echo a     && echo b"
    assert (run.line, cmd.line) == (2, 6)


def test_escape_directive_switches_to_backtick() -> None:
    df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == "echo a   b"


def test_syntax_directive_is_read_and_a_later_one_is_a_comment() -> None:
    df = parse("# syntax=docker/dockerfile:1\nFROM busybox\n# escape=`\nRUN echo \\\n x\n")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "\\"


def test_exec_form_is_parsed_and_bad_json_falls_back_to_the_shell_form() -> None:
    df = parse('FROM busybox\nCMD ["cat", "/hello"]\nENTRYPOINT [not json\n')
    cmd, entrypoint = df.stages[0].instructions
    assert cmd.exec_form == ("cat", "/hello")
    assert entrypoint.exec_form is None and entrypoint.args == "[not json"


def test_keywords_are_case_insensitive() -> None:
    df = parse("from busybox as base\nrun true\n")
    assert df.stages[0].name == "base" and df.stages[0].instructions[0].keyword == "RUN"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM busybox\nFOO bar\n", 2, "unknown instruction: FOO"),
        ("RUN true\nFROM busybox\n", 1, "only ARG may come before FROM"),
        ("FROM busybox\nCOPY --bogus=1 a b\n", 2, "unknown flag: --bogus"),
        ("FROM busybox\n\nRUN --mount=type=cache,target=/x true\n", 3, "RUN --mount is not supported"),
        ("FROM busybox\nSHELL /bin/bash -c\n", 2, "JSON form"),
        ("FROM busybox AS a\nFROM busybox AS a\n", 2, "duplicate stage name"),
        ("FROM busybox AS 1bad\n", 1, "invalid stage name"),
        ("FROM busybox\nCOPY onlyone\n", None, None),
        ("FROM busybox\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
    ],
)
def test_errors_carry_the_line_number(text: str, line: int | None, message: str | None) -> None:
    if message is None:
        parse(text)  # a single-word COPY is caught by the builder, which knows the context
        return
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"Dockerfile line {line}:")


def test_a_dockerfile_without_from_is_refused() -> None:
    with pytest.raises(DockerfileError, match="no FROM"):
        parse("# just a comment\n\nARG X=1\n")


def test_find_stage_by_name_or_index_only_looks_backwards() -> None:
    df = parse("FROM busybox AS one\nFROM busybox AS two\nFROM busybox\n")
    assert df.find_stage("one").index == 0  # type: ignore[union-attr]
    assert df.find_stage("1").name == "two"  # type: ignore[union-attr]
    assert df.find_stage("two", before=1) is None


def test_a_huge_or_binary_dockerfile_is_refused() -> None:
    with pytest.raises(DockerfileError):
        parse("FROM busybox\n" + "#" * (5 << 20))
    with pytest.raises(DockerfileError, match="NUL"):
        parse("FROM busybox\x00\n")


def test_an_onbuild_trigger_parses_as_its_instruction() -> None:
    from engine.dockerfile.parser import parse_trigger

    instr = parse_trigger("COPY --chown=1:1 a b", 3)
    assert (instr.keyword, instr.flag("chown"), instr.args, instr.line) == ("COPY", "1:1", "a b", 3)
    with pytest.raises(DockerfileError):
        parse_trigger("FROM busybox", 3)
