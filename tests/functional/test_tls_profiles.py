"""
lbpair's TLS profiles in a real HAProxy, scanned by sslyze against Mozilla's profiles.

One throwaway namespace holds the shop three times, each in an HAProxy of its own with one
``lbpair:haproxy:tls_profile`` and the certificate that profile asks for: intermediate on the
shop's VIP with the lab CA's ECDSA certificate, modern on a second VIP with an ECDSA certificate
of at most 90 days, old on a third with an RSA certificate signed with RSA. sslyze
(``scripts/setup`` puts it in ``.venv-sslyze``) scans the three at once with
``--mozilla_config=<profile>``; a finding fails the test and is printed. The intermediate shop
serves plain HTTP beside HTTPS (``redirect_http: false``): HSTS and the persistence cookie's
``Secure; HttpOnly`` are checked over both.
"""

import contextlib
import copy
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lab import netns, pki
from lab.util import stop_process, wait_until
from saltext.lbpair.node import haproxy, tls_files
from tests.conftest import REPO
from tests.functional.rigs import node_model, shop_haproxy, shop_pillar
from tests.unit.test_routing import SHOP
from tests.unit.tls_ca import shared_ca

NAMESPACE = "lbpair-tlsprofile"
SSLYZE = REPO / ".venv-sslyze" / "bin" / "python"
HOST = "shop.example.net"
PROFILES = ("intermediate", "modern", "old")
CONTROL = "without a profile"
#: per scan: the Mozilla profile lbpair renders and sslyze checks, and the VIP it is served on
#: (intermediate on the shop's own); the control is intermediate without lbpair's profile lines
SCANS = {
    "intermediate": ("intermediate", SHOP["vip"]),
    "modern": ("modern", "203.0.113.51"),
    "old": ("old", "203.0.113.52"),
    CONTROL: ("intermediate", "203.0.113.53"),
}
SCAN_TIMEOUT = 50


class RsaCa(pki.Ca):
    """The lab CA with RSA keys: Mozilla's old profile wants an RSA certificate signed with sha256WithRSAEncryption."""

    def _key(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pems.append(pki._pem(key))  # noqa: SLF001  (the lab CA's own PEM writer)
        return key


def profile_certificates():
    """Per profile: its CA's PEM and the shop's bundle, as that profile asks for them."""
    ecdsa = shared_ca()
    rsa_ca = RsaCa("lbpair tls test rsa root")
    names = (HOST, f"www.{HOST}")
    return {
        "intermediate": (ecdsa.pem, ecdsa.shop),
        "modern": (ecdsa.pem, ecdsa.bundle(HOST, names, days=89)),  # modern: a lifespan of 90 days at most
        "old": (rsa_ca.pem, rsa_ca.bundle(HOST, names)),
    }


def profile_config(folder, seed_pillar, profile, vip, bundle):
    """haproxy.cfg of the shop with ``profile`` on its VIP, its certificate file written beside it."""
    folder.mkdir()
    lbpair = shop_pillar(seed_pillar, str(folder / "admin.sock"))
    lbpair["haproxy"]["tls_profile"] = profile
    lbpair["vrrp"]["probe"] = {"enabled": False}  # three HAProxies, one loopback
    lbpair["services"]["shop"]["vip"] = vip
    lbpair["services"]["shop"]["tls"] = {"redirect_http": False, "certificates": {"shop": {"pem": bundle}}}
    model = node_model(lbpair, "lb1")
    certificate_dir = str(folder / "certs")
    tls_files.write(certificate_dir, model)
    config = folder / "haproxy.cfg"
    config.write_text(haproxy.render_config(model, certificate_dir))
    return config


def curl(*args):
    return netns.run(NAMESPACE, ["curl", "-s", "--max-time", "3", *args], check=False, timeout=10)


def answer(*args):
    """The status line and the headers (``{lower-case name: [values]}``) of a curl answer from the intermediate shop."""
    lines = curl("-D", "-", "-o", "/dev/null", *args).stdout.splitlines()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return (lines[0] if lines else ""), headers


def https_answer(ca_file, host=HOST):
    """An https answer for ``host``, the chain checked against the CA."""
    return answer("--cacert", str(ca_file), "--resolve", f"{host}:443:{SHOP['vip']}", f"https://{host}/")


def http_answer(host=HOST):
    """A plain HTTP answer for ``host``."""
    return answer("-H", f"Host: {host}", f"http://{SHOP['vip']}/")


def cookie_flags(headers):
    """The attributes of the persistence cookie HAProxy sets (lower case)."""
    (cookie,) = [value for value in headers.get("set-cookie", []) if value.startswith("web-id=")]
    return {attribute.strip().lower() for attribute in cookie.split(";")[1:]}


def start_scan(name, ca_file, out_dir):
    """sslyze on the VIP of :data:`SCANS` ``name``, checked against its Mozilla profile, in the background."""
    profile, vip = SCANS[name]
    command = [str(SSLYZE), "-m", "sslyze", f"--mozilla_config={profile}", f"--certinfo_ca_file={ca_file}",
               f"--json_out={out_dir / name.replace(' ', '-')}.json", f"{HOST}:443{{{vip}}}"]  # fmt: skip
    return netns.popen(NAMESPACE, command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    """sslyze's exit code and output; killed after :data:`SCAN_TIMEOUT` s."""
    try:
        output, _ = process.communicate(timeout=SCAN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return None, f"sslyze did not finish within {SCAN_TIMEOUT} s\n{output}"
    return process.returncode, output


def compliance(output):
    """sslyze's findings: its compliance section (the whole output if it has none)."""
    marker = "COMPLIANCE AGAINST"
    return output[output.index(marker) :] if marker in output else output


def serves(vip):
    return "200" in curl("-o", "/dev/null", "-w", "%{http_code}", f"http://{vip}/").stdout


@pytest.fixture(scope="module")
def rig(tmp_path_factory, seed_pillar_session):
    """The namespace with an HAProxy per scan serving; the scans' results and the CA files."""
    if not SSLYZE.exists():
        pytest.fail(f"sslyze is not installed: run scripts/setup (it creates {SSLYZE.parent.parent})")
    tmp_path = tmp_path_factory.mktemp("tlsprofile")
    certificates = profile_certificates()
    configs, ca_files = {}, {}
    for name, (profile, vip) in SCANS.items():
        ca_pem, bundle = certificates[profile]
        configs[name] = profile_config(tmp_path / name.replace(" ", "-"), copy.deepcopy(seed_pillar_session), profile, vip, bundle)
        ca_files[name] = configs[name].with_name("ca.pem")
        ca_files[name].write_text(ca_pem)
    # the control: what lbpair rendered before the profiles, HAProxy's and OpenSSL's defaults
    control = configs[CONTROL].read_text()
    configs[CONTROL].write_text("".join(line for line in control.splitlines(True) if not line.startswith("    ssl-default-")))
    with shop_haproxy(NAMESPACE, configs["intermediate"], lambda: serves(SHOP["vip"])), contextlib.ExitStack() as stack:
        for name, (_profile, vip) in SCANS.items():
            if vip != SHOP["vip"]:
                netns.add_address(NAMESPACE, "lo", f"{vip}/32")
                stack.callback(stop_process, netns.popen(NAMESPACE, ["haproxy", "-f", str(configs[name])], stderr=subprocess.DEVNULL))
        for _profile, vip in SCANS.values():
            wait_until(lambda vip=vip: serves(vip), 10, what=f"HAProxy serving on {vip}")
        scans = {name: start_scan(name, ca_files[name], tmp_path) for name in SCANS}
        for process in scans.values():
            stack.callback(process.kill)
        yield {"scans": {name: finish(process) for name, process in scans.items()}, "ca_files": ca_files}


@pytest.mark.parametrize("profile", PROFILES)
def test_sslyze_finds_the_profile_compliant_with_mozilla_s(rig, profile):
    returncode, output = rig["scans"][profile]
    assert returncode == 0, f"sslyze --mozilla_config={profile}:\n{compliance(output)}"
    assert f'Mozilla\'s "{profile}" configuration' in output and f"{HOST}:443: OK - Compliant." in output, output


def test_the_control_without_a_profile_fails_intermediate_as_before(rig):
    """The scan can fail: HAProxy's defaults offer CBC and non-forward-secret suites, and X448 and P-521."""
    returncode, output = rig["scans"][CONTROL]
    findings = compliance(output)
    assert returncode == 1 and "FAILED - Not compliant" in findings, output
    assert "* ciphers:" in findings and "* tls_curves:" in findings, findings


def test_an_https_answer_has_hsts_and_a_secure_httponly_cookie(rig):
    status, headers = https_answer(rig["ca_files"]["intermediate"])
    assert " 200" in status, (status, headers)
    assert headers.get("strict-transport-security") == ["max-age=63072000"], headers
    assert {"secure", "httponly"} <= cookie_flags(headers), headers


def test_haproxy_s_own_redirect_over_https_has_hsts_too(rig):
    status, headers = https_answer(rig["ca_files"]["intermediate"], host=f"www.{HOST}")
    assert " 301" in status and headers["location"] == [f"https://{HOST}/"], (status, headers)
    assert headers.get("strict-transport-security") == ["max-age=63072000"], headers


def test_plain_http_beside_https_has_no_hsts_and_its_cookie_is_for_https_only(rig):
    status, headers = http_answer()
    assert " 200" in status, (status, headers)
    assert "strict-transport-security" not in headers, headers
    # a browser keeps no Secure cookie from plain HTTP: there each request is balanced anew
    assert {"secure", "httponly"} <= cookie_flags(headers), headers
