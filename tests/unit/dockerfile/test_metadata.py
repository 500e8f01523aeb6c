"""Config changes from metadata instructions, with variables substituted as Docker does."""

from __future__ import annotations

import pytest

from engine.dockerfile.metadata import apply, parse_duration
from engine.dockerfile.parser import parse
from engine.errors import DockerfileError


def applied(lines: str, config: dict | None = None, env: dict | None = None) -> dict:
    out = dict(config or {})
    for instr in parse("FROM scratch\n" + lines).stages[0].instructions:
        out = apply(
            instr,
            out,
            {**(env or {}), **{e.split("=", 1)[0]: e.split("=", 1)[1] for e in out.get("Env") or []}},
        )
    return out


def test_env_expands_earlier_values_and_keeps_spaces() -> None:
    config = applied('ENV A=1\nENV B="$A two" C=${A:-x}\n')
    assert config["Env"] == ["A=1", "B=1 two", "C=1"]


def test_workdir_is_relative_to_the_previous_one() -> None:
    assert applied("WORKDIR /a\nWORKDIR b\nWORKDIR ../c\n")["WorkingDir"] == "/a/c"


def test_cmd_shell_form_uses_the_shell_instruction() -> None:
    config = applied('SHELL ["/bin/bash", "-xc"]\nCMD echo $HOME\n')
    assert config["Cmd"] == ["/bin/bash", "-xc", "echo $HOME"]  # not expanded: the shell does it


def test_label_expose_volume_user_stopsignal() -> None:
    config = applied(
        'LABEL a=b "c d"=e\nEXPOSE 80 $P/udp\nVOLUME ["/data", "/$V"]\nUSER ${U}\nSTOPSIGNAL SIGINT\n',
        env={"P": "53", "V": "logs", "U": "nobody"},
    )
    assert config["Labels"] == {"a": "b", "c d": "e"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}, "/logs": {}}
    assert config["User"] == "nobody" and config["StopSignal"] == "SIGINT"


def test_healthcheck_is_recorded() -> None:
    config = applied("HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost || exit 1\n")
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 30_000_000_000,
        "Retries": 3,
    }
    assert applied("HEALTHCHECK NONE\n")["Healthcheck"] == {"Test": ["NONE"]}


def test_onbuild_is_recorded_unexpanded() -> None:
    assert applied("ONBUILD RUN echo $X\n")["OnBuild"] == ["RUN echo $X"]


def test_a_bad_port_is_an_error_with_the_line() -> None:
    with pytest.raises(DockerfileError) as info:
        applied("ENV A=1\nEXPOSE notaport\n")
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("text", "ns"), [("1m30s", 90 * 10**9), ("500ms", 500 * 10**6), ("0", 0), ("1.5s", 1_500_000_000)]
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text, "interval", 1) == ns


def test_bad_durations() -> None:
    for text in ("", "10", "abc", "-1s", "5x"):
        with pytest.raises(DockerfileError):
            parse_duration(text, "interval", 1)
