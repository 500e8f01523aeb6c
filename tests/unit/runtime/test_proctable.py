"""Issue 10, finding 7: `top` rows as `ps -ef` prints them, zombies included."""

from __future__ import annotations

from engine.runtime import proctable

STAT = "42 (my (odd) name) S 7 42 42 34816 42 4194304 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000 100"


def test_parse_stat_keeps_a_command_name_with_parentheses() -> None:
    st = proctable.parse_stat(STAT)
    assert st is not None
    assert (st.pid, st.comm, st.state, st.ppid, st.tty_nr) == (42, "my (odd) name", "S", 7, 34816)
    assert st.cpu_ticks == 300 and st.start_ticks == 12345


def test_parse_stat_refuses_garbage() -> None:
    assert proctable.parse_stat("nonsense") is None
    assert proctable.parse_stat("1 (x) S") is None


def test_a_zombie_shows_as_defunct() -> None:
    assert proctable.format_cmd(b"", "sleep", "Z") == "[sleep] <defunct>"
    assert proctable.format_cmd(b"sleep\x001000\x00", "sleep", "S") == "sleep 1000"
    assert proctable.format_cmd(b"", "kworker", "S") == "[kworker]"


def test_zombies_of_members_are_members() -> None:
    table = {
        pid: proctable.parse_stat(f"{pid} (p) {state} {ppid} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0")
        for pid, state, ppid in [(10, "S", 1), (11, "Z", 10), (12, "Z", 99), (13, "S", 10)]
    }
    members = proctable.members_with_zombies({10, 13}, table)  # type: ignore[arg-type]
    # 11 is an unreaped child of a member; 12 is a zombie elsewhere on the host.
    assert members == {10, 11, 13}


def test_tty_column() -> None:
    assert proctable._tty(0) == "?"
    assert proctable._tty(136 << 8 | 3) == "pts/3"
