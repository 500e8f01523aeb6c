"""The nft ruleset Berth renders (pure); the kernel accepting it is an integration test's job."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.net import rules


def test_nothing_to_do_only_removes_the_table() -> None:
    script = rules.render("berth", [], [])
    assert script == "table ip berth {}\ndelete table ip berth\n"


def test_the_table_is_replaced_in_one_transaction_and_nothing_else_is_touched() -> None:
    script = rules.render("berth", [rules.BridgeRule("berth0", "172.17.0.0/16")], [])
    lines = script.splitlines()
    assert lines[:3] == ["table ip berth {}", "delete table ip berth", "table ip berth {"]
    assert "flush ruleset" not in script
    assert all("table" not in line for line in lines[3:])


def test_published_ports_are_dnatted_for_local_destinations_only() -> None:
    script = rules.render(
        "t",
        [rules.BridgeRule("b0", "10.0.0.0/24")],
        [
            rules.PortRule("", 8080, "tcp", "10.0.0.2", 80),
            rules.PortRule("127.0.0.1", 5353, "udp", "10.0.0.3", 53),
        ],
    )
    assert "tcp dport 8080 dnat to 10.0.0.2:80" in script
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 10.0.0.3:53" in script
    assert script.count("fib daddr type local jump published") == 2  # prerouting and output


def test_outbound_masquerade_is_skipped_for_internal_networks() -> None:
    script = rules.render(
        "t", [rules.BridgeRule("b0", "10.0.0.0/24"), rules.BridgeRule("b1", "10.0.1.0/24", internal=True)], []
    )
    assert 'ip saddr 10.0.0.0/24 oifname != "b0" masquerade' in script
    assert 'ip saddr 10.0.1.0/24 oifname != "b1" masquerade' not in script
    assert 'iifname "b1" oifname != "b1" drop' in script


def test_networks_are_isolated_from_each_other_but_published_ports_pass() -> None:
    script = rules.render(
        "t", [rules.BridgeRule("b0", "10.0.0.0/24"), rules.BridgeRule("b1", "10.0.1.0/24")], []
    )
    forward = script.split("chain forward {")[1].split("\n  }")[0]
    assert forward.index("ct status dnat accept") < forward.index('iifname "b0" oifname { "b1" } drop')
    assert 'iifname "b1" oifname { "b0" } drop' in forward


def test_loopback_from_a_bridge_is_dropped_unless_translated() -> None:
    script = rules.render("t", [rules.BridgeRule("b0", "10.0.0.0/24")], [])
    chain = script.split("chain input {")[1].split("\n  }")[0]
    assert chain.index("ct status dnat accept") < chain.index(
        'iifname { "b0" } ip daddr 127.0.0.0/8 counter drop'
    )


def test_a_foreign_forward_drop_policy_is_found_and_our_own_table_is_not() -> None:
    ruleset = """table ip filter {
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
	}
}
table ip berth {
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
table inet fw {
	chain fwd {
		type filter hook forward priority filter; policy accept;
	}
}
"""
    assert rules.foreign_forward_drops(ruleset, "berth") == ["table ip filter, chain FORWARD"]


def test_a_network_cannot_ask_another_networks_name_server() -> None:
    script = rules.render(
        "t",
        [
            rules.BridgeRule("b0", "10.0.0.0/24", gateway="10.0.0.1"),
            rules.BridgeRule("b1", "10.0.1.0/24", gateway="10.0.1.1"),
        ],
        [],
    )
    assert 'iifname "b0" ip daddr { 10.0.1.1 } meta l4proto { tcp, udp } th dport 53 drop' in script
    assert 'iifname "b1" ip daddr { 10.0.0.1 } meta l4proto { tcp, udp } th dport 53 drop' in script


def _two_bridges(**kwargs: object) -> str:
    return rules.render(
        "t",
        [
            rules.BridgeRule("b0", "10.0.0.0/24", gateway="10.0.0.1"),
            rules.BridgeRule("b1", "10.0.1.0/24", **kwargs),
        ],  # type: ignore[arg-type]
        [rules.PortRule("127.0.0.1", 8080, "tcp", "10.0.0.2", 80)],
    )


def test_loopback_destinations_from_outside_are_never_translated() -> None:
    prerouting = _two_bridges().split("chain prerouting {")[1].split("\n  }")[0]
    assert prerouting.index("ip daddr 127.0.0.0/8 return") < prerouting.index("jump published")


def test_nothing_enters_a_bridge_from_outside_unless_published_or_answered() -> None:
    forward = _two_bridges().split("chain forward {")[1].split("\n  }")[0]
    accept = forward.index("ct status dnat accept")
    established = forward.index('oifname { "b0", "b1" } ct state established,related accept')
    assert accept < established < forward.index('oifname { "b0", "b1" } iifname != { "b0", "b1" } drop')
    assert 'iifname { "b0", "b1" } ip saddr 127.0.0.0/8 drop' in forward


def test_internal_networks_are_cut_off_before_published_ports_are_accepted() -> None:
    forward = _two_bridges(internal=True).split("chain forward {")[1].split("\n  }")[0]
    assert forward.index('iifname "b1" oifname != "b1" drop') < forward.index("ct status dnat accept")


@pytest.mark.parametrize(
    ("bridges", "ports"),
    [
        ([rules.BridgeRule('b0" accept; flush ruleset', "10.0.0.0/24")], []),
        ([], [rules.PortRule("", 80, "tcp dport 1 accept\n}\nflush ruleset", "10.0.0.2", 80)]),
        ([], [rules.PortRule("", 0, "tcp", "10.0.0.2", 80)]),
        ([], [rules.PortRule("", 80, "tcp", "10.0.0.2; flush ruleset", 80)]),
    ],
)
def test_values_that_could_not_be_rules_are_refused(bridges: list, ports: list) -> None:  # type: ignore[type-arg]
    with pytest.raises((InvalidArgument, ValueError)):
        rules.render("t", bridges, ports)
