"""Networks in the browser, as a person uses them: create a network, run a web server on it with a
published port, open that port from the containers list, then remove the container and the network.

Screenshots at desktop and phone width go to tests/e2e/screenshots/networks-*.png.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require_root
from tests.e2e.conftest import PHONE, Server, screenshot

# busybox's web server in the foreground, serving /etc: /hostname is the container's short ID.
HTTPD = "httpd -f -p 80 -h /etc"


def free_port() -> int:
    """A host port nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def confirm(page: Any, expected: str) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert expected in dialog.inner_text()  # the question names the object
    dialog.locator("[data-confirm-ok]").click()


@pytest.fixture
def names(berth_server: Server) -> Iterator[dict[str, str]]:
    """Unique names for the test's network and container; both are removed afterwards, whatever happened."""
    require_root()
    tag = secrets.token_hex(3)
    made = {"network": f"e2e-net-{tag}", "container": f"e2e-httpd-{tag}"}
    try:
        yield made
    finally:
        berth_server.berth("rm", "-f", made["container"], check=False)
        berth_server.berth("network", "rm", made["network"], check=False)
        # The DNS server, nft table and bridges that running on a user network brought up.
        berth_server.berth("network", "teardown", check=False)


def test_operator_publishes_a_port_on_a_new_network_and_opens_it(
    logged_in_page: Callable[..., Any], names: dict[str, str], berth_server: Server
) -> None:
    network, name = names["network"], names["container"]
    port = free_port()
    page = logged_in_page("operator")

    # Create the network from the Networks page; a bad subnet comes back next to its field first.
    page.get_by_role("link", name="Networks").click()
    page.wait_for_url(re.compile(r"/networks/$"))
    page.get_by_role("link", name="Create network").click()
    page.get_by_label("Name", exact=True).fill(network)
    page.get_by_label("Subnet").fill("10.99.1.0/99")
    page.get_by_role("button", name="Create network").click()
    assert "10.99.1.0/99" in page.locator("#id_subnet-error").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == network  # what was typed is kept
    page.get_by_label("Subnet").fill("")
    page.get_by_label("Labels").fill("purpose=e2e")
    page.get_by_role("button", name="Create network").click()
    page.wait_for_url(re.compile(r"/networks/[0-9a-f]{64}/$"))
    assert network in page.locator("h1").inner_text()

    # Run a web server on it, published on a loopback port; the equivalent command says so.
    page.goto("/containers/run/")
    page.get_by_label("Image", exact=True).fill("busybox")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Command", exact=True).fill(HTTPD)
    page.locator("summary", has_text="Network and ports").click()
    options = page.locator("#id_network option").all_inner_texts()
    assert network in options and not any(o.startswith("host") for o in options)  # host: admins only
    page.get_by_label("Network", exact=True).select_option(network)
    page.get_by_label("Published ports").fill(f"127.0.0.1:{port}:80")
    page.get_by_label("Network aliases").fill("web")
    cli = page.locator("#cli-preview")
    page.wait_for_function(
        "p => document.querySelector('#cli-preview').innerText.includes(p)", arg="--network-alias web"
    )
    assert f"--network {network}" in cli.inner_text() and f"-p 127.0.0.1:{port}:80" in cli.inner_text()
    screenshot(page, "networks-run-form")
    page.get_by_role("button", name="Run container").click()
    page.wait_for_url(re.compile(r"/containers/[0-9a-f]{64}/\?tab=logs$"))
    detail = page.url.split("?")[0]
    short_id = detail.rstrip("/").rsplit("/", 1)[1][:12]

    # The port is a link in the containers table that opens the service in a new tab.
    page.goto("/containers/")
    row = page.locator("tr", has=page.get_by_role("link", name=name))
    link = row.get_by_role("link", name=f"127.0.0.1:{port}->80/tcp")
    assert link.get_attribute("href") == f"http://127.0.0.1:{port}/"
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    screenshot(page, "networks-containers-list")
    with page.context.expect_page() as opened:
        link.click()
    served = opened.value
    served.wait_for_load_state()
    assert served.url == f"http://127.0.0.1:{port}/"
    served.goto(f"http://127.0.0.1:{port}/hostname")
    assert served.locator("body").inner_text().strip() == short_id  # the page the container serves
    served.close()

    # The container's overview lists the network with its address and alias, and the port.
    page.goto(detail + "?tab=overview")
    networks_panel = page.get_by_role("region", name="Networks")
    assert network in networks_panel.inner_text() and "web" in networks_panel.inner_text()
    assert re.search(r"10\.\d+\.\d+\.\d+|172\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+", networks_panel.inner_text())
    assert networks_panel.get_by_role("link", name=f"127.0.0.1:{port}->80/tcp").count() == 1
    screenshot(page, "networks-container-overview")

    # Connect it to the default bridge too, then disconnect it again, from the same panel.
    networks_panel.get_by_label("Connect to network").select_option("bridge")
    networks_panel.get_by_role("button", name="Connect", exact=True).click()
    page.locator(".toast", has_text=f"Connected {name} to bridge").wait_for()
    networks_panel.get_by_role("link", name="bridge", exact=True).wait_for()
    networks_panel.get_by_role("button", name="Disconnect from bridge").click()
    confirm(page, f"Disconnect {name} from network bridge?")
    page.locator(".toast", has_text=f"Disconnected {name} from bridge").wait_for()
    assert networks_panel.get_by_role("link", name="bridge", exact=True).count() == 0

    # The network's page lists the container, linked to its page.
    networks_panel.get_by_role("link", name=network).click()
    page.wait_for_url(re.compile(r"/networks/[0-9a-f]{64}/$"))
    members = page.get_by_role("region", name="Connected containers")
    assert members.get_by_role("link", name=name).get_attribute("href") == detail.removeprefix(
        berth_server.url
    )
    screenshot(page, "networks-detail")

    # Removing the network while the container is on it: the engine's refusal, as a toast.
    page.goto("/networks/")
    page.get_by_role("button", name=f"Remove {network}").click()
    confirm(page, f"Remove network {network}?")
    toast = page.locator(".toast", has_text="in use")
    toast.wait_for()
    assert name in toast.inner_text()
    screenshot(page, "networks-list-in-use", full_page=False)

    # The same pages at phone width.
    phone = logged_in_page("operator", viewport=PHONE)
    phone.goto("/networks/")
    screenshot(phone, "networks-list-phone")
    phone.goto("/containers/")
    screenshot(phone, "networks-containers-list-phone")
    phone.goto(detail + "?tab=overview")
    screenshot(phone, "networks-container-overview-phone")
    phone.goto("/networks/")
    phone.get_by_role("link", name=network).click()
    screenshot(phone, "networks-detail-phone")

    # Remove the container from the list, then the network.
    page.goto("/containers/")
    row = page.locator("tr", has=page.get_by_role("link", name=name))
    row.get_by_role("button", name="Remove").click()
    confirm(page, f"Remove container {name}?")
    page.get_by_role("link", name=name).wait_for(state="detached")
    page.goto("/networks/")
    page.get_by_role("button", name=f"Remove {network}").click()
    confirm(page, f"Remove network {network}?")
    page.get_by_role("link", name=network).wait_for(state="detached")
    page.locator(".toast", has_text=f"Removed network {network}").wait_for()
    screenshot(page, "networks-list")
    # The only console errors are the form's 400 and the in-use 409 asked for above.
    expected = ("status of 400", "status of 409", "Error Code 409")
    unexpected = [e for e in page.berth_errors if not any(x in e for x in expected)]
    assert unexpected == [], page.berth_errors
