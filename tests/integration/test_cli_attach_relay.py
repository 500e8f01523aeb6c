"""The CLI's one terminal relay (engine/cli/attach.relay) as `run -i` and `attach` use it: piped stdin
reaches the container and its end closes the container's stdin; `attach` detaches on Ctrl-P Ctrl-Q
and leaves the container running. Real runc + conmon, one CLI process per command.
"""

from __future__ import annotations

import pexpect
import pytest

from tests.polling import wait_until

pytestmark = pytest.mark.root


def test_run_interactive_relays_piped_stdin_and_its_end(berth_cli) -> None:
    # cat ends only when its stdin closes: the relay must pass the end of the pipe on.
    proc = berth_cli(
        "run", "-i", "--rm", "--network", "none", "busybox", "cat", input="one\ntwo\n", timeout=60
    )
    assert (proc.returncode, proc.stdout) == (0, "one\ntwo\n"), proc.stderr


def test_attach_relays_keys_and_detaches_on_ctrl_p_ctrl_q(berth_cli) -> None:
    berth_cli.ok("run", "-dit", "--network", "none", "--name", "att", "busybox", "sh")
    child = pexpect.spawn(
        berth_cli.argv[0], [*berth_cli.argv[1:], "attach", "att"], env=berth_cli.env, timeout=30
    )
    try:

        def answered() -> bool:
            # Keys typed before the CLI has made its terminal raw are flushed, so ask until one is
            # relayed; the echo of the question has no "42" in it.
            child.sendline("echo $((6*7))")
            return child.expect(["42", pexpect.TIMEOUT], timeout=1) == 0

        wait_until(answered, timeout=30, interval=0.1, what="the shell to answer through attach")
        child.send("\x10\x11")  # Ctrl-P Ctrl-Q: Docker's detach keys
        child.expect(pexpect.EOF)
    finally:
        child.close()
    # Detaching ends the CLI with 0 and leaves the main process running.
    assert child.exitstatus == 0
    assert berth_cli.inspect("att")["State"]["Status"] == "running"
