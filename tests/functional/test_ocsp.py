"""
OCSP stapling with real parts: a throwaway CA whose leaf names OpenSSL's own responder
(``openssl ocsp``), lbpair's refresh asking it, and a real HAProxy serving lbpair's rendered
configuration: ``openssl s_client -status`` sees the stapled response, live. A revoked
certificate's answer is refused; a responder that answers garbage, hangs, drips or redirects
leaves the previous file in place.
"""

import contextlib
import functools
import os
import signal
import socket
import subprocess
import threading

import pytest

from lab import netns
from lab.util import stop_process, wait_until
from saltext.lbpair.node import haproxy, ocsp, tls_files
from tests.functional.rigs import node_model, shop_haproxy, shop_pillar
from tests.functional.test_configured import apply
from tests.unit.ocsp_ca import OcspCa
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca

NAMESPACE = "lbpair-ocsp"
VIP = SHOP["vip"]
RESPONDER = ("127.0.0.1", 8888)


def _url(address):
    return f"http://{address[0]}:{address[1]}/ocsp"


def _index_line(certificate, revoked=False):
    expires = certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    revoked_at = certificate.not_valid_before_utc.strftime("%y%m%d%H%M%SZ") if revoked else ""
    subject = "/CN=" + certificate.subject.rfc4514_string()[3:]
    return f"{'R' if revoked else 'V'}\t{expires}\t{revoked_at}\t{certificate.serial_number:X}\tunknown\t{subject}\n"


@pytest.fixture(scope="module")
def ca():
    ca = OcspCa(_url(RESPONDER))
    ca.shop = ca.leaf("shop.example.net")
    ca.api = ca.leaf("api.shop.example.net")  # revoked
    for name, (port, _handler) in BAD.items():  # each names its bad responder
        setattr(ca, name, ca.leaf(f"{name}.shop.example.net", url=_url(("127.0.0.1", port))))
    return ca


def _responder(tmp_path, ca):
    """``openssl ocsp`` in the namespace: the shop's leaf good, the api's revoked, signed by a delegated responder."""
    ca_pem, responder_pem, responder_key = ca.pems()
    leaves = ca.leaves
    (tmp_path / "index.txt").write_text(_index_line(leaves["shop.example.net"]) + _index_line(leaves["api.shop.example.net"], True))
    for name, text in (("ca.pem", ca_pem), ("rsigner.pem", responder_pem), ("rkey.pem", responder_key)):
        (tmp_path / name).write_text(text)
    command = ["openssl", "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "rsigner.pem", "-rkey", "rkey.pem",
               "-port", str(RESPONDER[1]), "-ndays", "1"]  # fmt: skip
    return netns.popen(NAMESPACE, command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _garbage(client, stop):
    client.recv(65536)
    client.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n\x30\x03\x0a\x01\x00garbage")


def _hangs(client, stop):
    stop.wait()


def _redirect(client, stop):
    client.recv(65536)
    client.sendall(f"HTTP/1.0 302 Found\r\nLocation: {_url(RESPONDER)}\r\n\r\n".encode())


def _drips(client, stop):
    """HTTP 200 and one byte of a header every 0.2 s, never done."""
    client.recv(65536)
    client.sendall(b"HTTP/1.0 200 OK\r\nX-Slow: ")
    while not stop.wait(0.2):
        client.sendall(b"a")


BAD = {"garbage": (8889, _garbage), "hangs": (8890, _hangs), "redirect": (8891, _redirect), "drips": (8892, _drips)}


@contextlib.contextmanager
def _bad_responders():
    """In the namespace, a responder for each of :data:`BAD`: each answers every connection with its handler."""
    with netns.enter(NAMESPACE):
        servers = {name: socket.create_server(("127.0.0.1", port)) for name, (port, _handler) in BAD.items()}
    stop = threading.Event()

    def serve(server, handler):
        while not stop.is_set():
            with contextlib.suppress(OSError):
                client, _ = server.accept()
                with client:
                    handler(client, stop)

    threads = [threading.Thread(target=serve, args=(servers[name], handler), daemon=True) for name, (_port, handler) in BAD.items()]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for server in servers.values():
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for thread in threads:
            thread.join(timeout=5)


def stapled_status(servername):
    """What ``openssl s_client -status`` prints about the stapled response for ``servername``."""
    done = netns.run(NAMESPACE, ["openssl", "s_client", "-status", "-servername", servername, "-connect", f"{VIP}:443"],
                     check=False, input="", timeout=10)  # fmt: skip
    return done.stdout


@pytest.fixture
def rig(tmp_path, seed_pillar, ca):
    socket_path = str(tmp_path / "admin.sock")
    lbpair = shop_pillar(seed_pillar, socket_path)
    names = {"shop": ca.shop, "api": ca.api, **{name: getattr(ca, name) for name in BAD}}
    lbpair["services"]["shop"]["tls"] = {"certificates": {name: {"pem": pem} for name, pem in names.items()}}
    model = node_model(lbpair, "lb1")
    directory = str(tmp_path / "certs" / "lbpair")
    tls_files.write(directory, model)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(model, directory))
    with shop_haproxy(NAMESPACE, config, lambda: "subject=" in stapled_status("shop.example.net")):
        responder = _responder(tmp_path, ca)
        try:
            with _bad_responders():
                yield model, directory, socket_path
        finally:
            stop_process(responder)


def refresh(model, directory, socket_path):
    with netns.enter(NAMESPACE):
        return ocsp.refresh(model, directory, socket_path, asker=functools.partial(ocsp.ask, timeout=2))["shop"]


def _answered(found):
    """``found`` once the responder (started with HAProxy) answers, else None."""
    _answered.last = found
    return found if "did not answer" not in found["shop"].get("reason", "") else None


def test_refresh_staples_a_good_response_live_and_refuses_revoked_garbage_and_silence(rig, ca):
    model, directory, socket_path = rig
    assert "OCSP response: no response sent" in stapled_status("shop.example.net")
    try:
        found = wait_until(lambda: _answered(refresh(model, directory, socket_path)), 10, what="the responder answering")
    except TimeoutError:
        raise AssertionError(_answered.last) from None
    shop = found["shop"]
    assert shop["result"] == "stapled" and shop["pushed"] == "Success!", found
    served = stapled_status("shop.example.net")
    assert "OCSP Response Status: successful" in served and "Cert Status: good" in served
    assert found["api"]["result"] == "refused" and "revoked" in found["api"]["reason"]
    assert "no response sent" in stapled_status("api.shop.example.net")
    assert refresh(model, directory, socket_path)["shop"]["pushed"] == "OCSP Response updated!"  # the live one replaced
    assert os.stat(shop["file"]).st_mode & 0o777 == 0o600
    _restart_haproxy(config_of(socket_path))
    served = stapled_status("shop.example.net")  # the new HAProxy read it from <crt>.ocsp at start
    assert "OCSP Response Status: successful" in served and "Cert Status: good" in served


def config_of(socket_path):
    return os.path.join(os.path.dirname(socket_path), "haproxy.cfg")


def _gone(pid):
    """Whether ``pid`` has exited (a zombie the rig has not reaped counts)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _restart_haproxy(config):
    """Stop the namespace's HAProxy and start a new one with ``config`` (what a restart does)."""
    (pid,) = [pid for pid in netns.pids(NAMESPACE) if open(f"/proc/{pid}/comm").read().strip() == "haproxy"]
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: _gone(pid), 10, what="HAProxy stopped")
    netns.popen(NAMESPACE, ["haproxy", "-f", config], stderr=subprocess.DEVNULL)
    wait_until(lambda: "subject=" in stapled_status("shop.example.net"), 10, what="HAProxy serving again")


def test_a_responder_that_answers_garbage_or_hangs_leaves_the_previous_response(rig, ca):
    model, directory, socket_path = rig
    previous = {}
    for name in BAD:
        host = f"{name}.shop.example.net"
        crt_file = tls_files.file_of(model["services"]["shop"]["tls"]["certificates"][name], directory)
        der = ca.response(ca.leaves[host])
        previous[ocsp.write(crt_file, der)] = der
    found = refresh(model, directory, socket_path)
    reasons = {name: found[name]["reason"] for name in BAD}
    assert reasons == {
        "garbage": "the response is not a DER OCSP response",
        "hangs": "the responder at 127.0.0.1:8890 did not answer (TimeoutError)",
        "redirect": "the responder answered HTTP 302",  # not followed
        "drips": "the responder at 127.0.0.1:8892 did not answer (TimeoutError)",  # the deadline is for the whole exchange
    }
    assert all(found[name]["result"] == "refused" and found[name]["kept"]["stale"] is False for name in BAD)
    for path, der in previous.items():
        with open(path, "rb") as handle:
            assert handle.read() == der


@pytest.fixture
def pillar(seed_pillar, ca):
    """The minion's pillar (tests.functional.conftest): the shop with a certificate naming a responder and one naming none."""
    seed_pillar["services"]["shop"] = {**SHOP, "tls": {"certificates": {"shop": {"pem": ca.shop}, "plain": {"pem": shared_ca().shop}}}}
    return seed_pillar


def test_the_salt_functions_report_per_certificate_and_show_no_key(state_functions, modules, ca):
    assert apply(state_functions, "haproxy").result is True
    found = modules.lbpair_haproxy.ocsp_refresh()["shop"]  # nothing listens on the responder's port here
    assert found["shop"]["result"] == "refused" and "did not answer (ConnectionRefusedError)" in found["shop"]["reason"]
    assert found["plain"] == {"result": "none", "reason": "the certificate names no OCSP responder"}
    report = modules.lbpair_haproxy.certificates()["shop"]
    assert report["shop"]["ocsp"] == {"responder": _url(RESPONDER), "missing": True, "stale": True}
    assert report["plain"]["ocsp"] == {"none": "the certificate names no OCSP responder"}
    assert not ca.shows_a_key(repr((found, report)))
