"""ANSI SGR → whitelisted segments: colours survive, everything else is dropped, nothing becomes HTML."""

from __future__ import annotations

from dashboard import ansi


def test_plain_text_is_one_unstyled_segment() -> None:
    assert ansi.segments("hello world") == [("hello world", "")]


def test_basic_foreground_colour_becomes_a_class() -> None:
    assert ansi.segments("\x1b[31mred\x1b[0m plain") == [("red", "ansi-f1"), (" plain", "")]


def test_bold_and_bright_colours_combine_in_a_fixed_order() -> None:
    assert ansi.segments("\x1b[1;92;44mx") == [("x", "ansi-b ansi-f10 ansi-g4")]


def test_attribute_resets_turn_single_attributes_off() -> None:
    assert ansi.segments("\x1b[1;4ma\x1b[22mb\x1b[24mc") == [
        ("a", "ansi-b ansi-u"),
        ("b", "ansi-u"),
        ("c", ""),
    ]


def test_default_colour_codes_clear_the_colour() -> None:
    assert ansi.segments("\x1b[31;42ma\x1b[39mb\x1b[49mc") == [
        ("a", "ansi-f1 ansi-g2"),
        ("b", "ansi-g2"),
        ("c", ""),
    ]


def test_256_colours_map_to_the_nearest_basic_colour() -> None:
    assert ansi.segments("\x1b[38;5;196mx") == [("x", "ansi-f9")]  # bright red in the cube
    assert ansi.segments("\x1b[38;5;3mx") == [("x", "ansi-f3")]  # the first 16 are kept as they are
    assert ansi.segments("\x1b[48;5;232mx") == [("x", "ansi-g0")]  # darkest grey → black


def test_truecolour_maps_to_the_nearest_basic_colour() -> None:
    assert ansi.segments("\x1b[38;2;250;250;250mx") == [("x", "ansi-f15")]
    assert ansi.segments("\x1b[38;2;0;200;0mx") == [("x", "ansi-f2")]


def test_a_bare_reset_and_an_empty_sgr_both_reset() -> None:
    assert ansi.segments("\x1b[31ma\x1b[mb") == [("a", "ansi-f1"), ("b", "")]


def test_osc_52_clipboard_write_is_dropped_entirely() -> None:
    line = "before\x1b]52;c;ZXZpbCBwYXlsb2Fk\x07after"
    assert ansi.plain(line) == "beforeafter"


def test_osc_8_hyperlink_keeps_only_its_text() -> None:
    line = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    assert ansi.plain(line) == "click"


def test_unterminated_osc_swallows_the_rest_of_the_line() -> None:
    assert ansi.plain("ok\x1b]0;title without end") == "ok"


def test_osc_ended_by_another_escape_does_not_leak_its_payload() -> None:
    assert ansi.segments("\x1b]0;title\x1b[31mred") == [("red", "ansi-f1")]


def test_cursor_movement_and_device_queries_are_dropped() -> None:
    assert ansi.plain("a\x1b[2J\x1b[H\x1b[6nb\x1b[?25lc") == "abc"


def test_control_characters_are_dropped_but_tabs_are_kept() -> None:
    assert ansi.plain("a\x00b\x07c\td\x7fe\x85f") == "abc\tdef"


def test_carriage_return_keeps_what_a_terminal_would_show() -> None:
    assert ansi.plain("progress 10%\rprogress 99%") == "progress 99%"
    assert ansi.plain("windows line\r") == "windows line"


def test_html_is_left_as_text_for_the_client_to_escape() -> None:
    # The server never escapes into HTML: the client uses textContent, so the text must stay verbatim.
    assert ansi.segments("<img src=x onerror=alert(1)>") == [("<img src=x onerror=alert(1)>", "")]


def test_payload_is_a_plain_string_when_no_styling_is_needed() -> None:
    assert ansi.payload("just text") == "just text"


def test_payload_is_a_list_of_pairs_when_styled() -> None:
    assert ansi.payload("\x1b[1mbold\x1b[0m rest") == [["bold", "ansi-b"], [" rest", ""]]


def test_payload_of_only_escapes_is_a_plain_string() -> None:
    assert ansi.payload("\x1b[2Kdone") == "done"


def test_payload_cuts_very_long_lines_with_a_marker() -> None:
    out = ansi.payload("x" * (ansi.MAX_DISPLAY + 10))
    assert isinstance(out, str)
    assert out.startswith("x" * ansi.MAX_DISPLAY)
    assert "10 more characters" in out


def test_invalid_parameters_do_not_raise() -> None:
    for line in (
        "\x1b[38;5m",
        "\x1b[38;2;1m",
        "\x1b[999999999m",
        "\x1b[;;;m",
        "\x1b[",
        "\x1b",
        "\x1b[38;9;1m",
    ):
        ansi.segments(line + "x")


def test_only_whitelisted_classes_are_ever_produced() -> None:
    allowed = {"ansi-b", "ansi-d", "ansi-i", "ansi-u", "ansi-s"} | {
        f"ansi-{k}{n}" for k in "fg" for n in range(16)
    }
    line = "".join(f"\x1b[{code}mx" for code in range(0, 110)) + "\x1b[38;5;100;48;2;9;9;9my"
    for _, classes in ansi.segments(line):
        assert set(classes.split()) <= allowed
