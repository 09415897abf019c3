"""PZP-JWS across implementations: signatures made by `pzpgw sign` verify
with python3-jwcrypto and the openssl command line, signatures made by
jwcrypto verify with `pzpgw verify`, and every must-fail case fails with
the right check. Runs with an EC P-256 and an RSA-2048 test PKI."""

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import json_encode

from gw import BINARY, SRCDIR

DATA = os.path.join(SRCDIR, "tests", "data", "sign")
SMALL = os.path.join(DATA, "bundle-small.json")
BIG = os.path.join(DATA, "bundle-20k.json")
CANON_URI = "http://hl7.org/fhir/canonicalization/json#static"
TARGET_FORMAT = "application/fhir+json;canonicalization=" + CANON_URI
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def run(*args, check=None):
    p = subprocess.run([BINARY] + list(args), capture_output=True)
    if check is not None:
        assert p.returncode == check, (args, p.returncode, p.stderr)
    return p


class Pki:
    def __init__(self, kind, directory):
        self.kind = kind
        self.dir = directory
        env = dict(os.environ, PZPGW_PKI_KEY=kind)
        subprocess.run(["sh", os.path.join(SRCDIR, "certs", "dev-pki.sh"),
                        directory, "--extras"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.alg = "ES256" if kind == "ec" else "PS256"

    def p(self, name):
        return os.path.join(self.dir, name)


@pytest.fixture(scope="module", params=["ec", "rsa"])
def pki(request):
    d = tempfile.mkdtemp(prefix="pzpgw-sign-")
    try:
        yield Pki(request.param, os.path.join(d, "pki"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def tmp(tmp_path):
    return tmp_path


# Python's json turns 1.50 into 1.5, which is a different (signed) FHIR
# value; numbers travel through these helpers as their original text.
RAWNUM = "\x00num:"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_float=lambda t: RAWNUM + t,
                         parse_int=lambda t: RAWNUM + t)


def dumps(obj, **kw):
    text = json.dumps(obj, **kw)
    return re.sub(r'"\\u0000num:([-+.0-9eE]+)"', r"\1", text)


def write_json(path, obj, indent=None, ensure_ascii=False):
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(obj, indent=indent, ensure_ascii=ensure_ascii))
    return str(path)


def sign(pki, src, out, name="hospital", extra=()):
    p = run("sign", "--key", pki.p(name + ".key"), "--cert",
            pki.p(name + ".crt"), *extra, src, check=0)
    with open(out, "wb") as f:
        f.write(p.stdout)
    return str(out)


def verify(pki, path, *extra):
    return run("verify", "--trust", pki.p("uzi-server-ca.pem"), *extra,
               str(path))


def canon(path):
    return run("canon", str(path), check=0).stdout


def jws_of(path):
    return base64.b64decode(load(path)["signature"]["data"]).decode()


def pem_certs(path):
    with open(path) as f:
        text = f.read()
    out = []
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = block.split("-----END CERTIFICATE-----")[0]
        out.append("".join(body.split()))
    return out


def der_ecdsa(rs):
    """r||s (64 bytes) to a DER ECDSA-Sig-Value, for openssl dgst."""
    def integer(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    body = integer(rs[:32]) + integer(rs[32:])
    return b"\x30" + bytes([len(body)]) + body


# ---- canonical form ----

@pytest.mark.parametrize("path", [SMALL, BIG])
def test_canon_matches_independent_jcs(path):
    """An independent JCS in Python (numbers kept as text) agrees with
    `pzpgw canon` on the project's Bundles."""
    b = load(path)
    for k in ("text", "meta", "signature"):
        b.pop(k, None)
    want = dumps(b, sort_keys=True, separators=(",", ":"),
                 ensure_ascii=False).encode()
    assert canon(path) == want


# ---- pzpgw signs, others verify ----

def test_pzpgw_signature_verifies_with_jwcrypto(pki, tmp):
    signed = sign(pki, BIG, tmp / "signed.json")
    token = jws_of(signed)
    hdr, payload, sig = token.split(".")
    assert payload == "", "payload part must be detached"
    header = json.loads(b64url_dec(hdr))
    assert header["alg"] == pki.alg
    assert header["typ"] == "JOSE"
    assert header["canon"] == CANON_URI
    assert header["x5c"] == pem_certs(pki.p("hospital.crt"))
    assert header["srCms"][0]["commId"]["id"] == \
        "urn:oid:1.2.840.10065.1.12.1.5"
    leaf_der = base64.b64decode(header["x5c"][0])
    assert header["x5t#S256"] == b64url(hashlib.sha256(leaf_der).digest())
    assert "sigT" in header and "kid" in header

    # The canonical bytes of the signed Bundle (signature left out) are
    # what was signed: re-attach them and let jwcrypto check.
    data = canon(signed)
    with open(BIG, "rb") as f:
        assert canon(BIG) == data
    key = jwk.JWK.from_pem(open(pki.p("hospital-leaf.crt"), "rb").read())
    obj = jws.JWS()
    obj.deserialize(hdr + "." + b64url(data) + "." + sig, key)
    assert obj.payload == data

    # Any other byte string does not verify.
    obj = jws.JWS()
    with pytest.raises(Exception):
        obj.deserialize(hdr + "." + b64url(data + b" ") + "." + sig, key)

    b = load(signed)
    s = b["signature"]
    assert s["sigFormat"] == "application/jose"
    assert s["targetFormat"] == TARGET_FORMAT
    assert s["who"]["identifier"] == {"system": URA_SYSTEM,
                                      "value": "90000002"}
    assert s["type"][0]["system"] == "urn:iso-astm:E1762-95:2013"


def test_pzpgw_signature_verifies_with_openssl_cli(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json")
    hdr, _, sig = jws_of(signed).split(".")
    tbs = tmp / "tbs"
    tbs.write_bytes((hdr + "." + b64url(canon(signed))).encode())
    raw = b64url_dec(sig)
    sigfile = tmp / "sig"
    opts = []
    if pki.kind == "ec":
        assert len(raw) == 64
        sigfile.write_bytes(der_ecdsa(raw))
    else:
        sigfile.write_bytes(raw)
        opts = ["-sigopt", "rsa_padding_mode:pss",
                "-sigopt", "rsa_pss_saltlen:32"]
    pub = tmp / "pub.pem"
    subprocess.run(["openssl", "x509", "-in", pki.p("hospital-leaf.crt"),
                    "-pubkey", "-noout", "-out", str(pub)], check=True)
    p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub)]
                       + opts + ["-signature", str(sigfile), str(tbs)],
                       capture_output=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # A changed input fails with openssl as well.
    tbs.write_bytes(tbs.read_bytes() + b"x")
    p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub)]
                       + opts + ["-signature", str(sigfile), str(tbs)],
                       capture_output=True)
    assert p.returncode != 0


# ---- jwcrypto signs, pzpgw verifies ----

def jwcrypto_signed(pki, src, out, alg=None, key=None, header_extra=None,
                    ura="90000002", when=None):
    bundle = load(src)
    payload = canon(src)
    if key is None:
        key = jwk.JWK.from_pem(open(pki.p("hospital.key"), "rb").read())
    when = when or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    header = {"alg": alg or pki.alg, "typ": "JOSE",
              "x5c": pem_certs(pki.p("hospital.crt")),
              "sigT": when, "canon": CANON_URI,
              "srCms": [{"commId": {"id": "urn:oid:1.2.840.10065.1.12.1.5"}}]}
    header.update(header_extra or {})
    obj = jws.JWS(payload)
    obj.add_signature(key, None, json_encode(header))
    h, _, s = obj.serialize(compact=True).split(".")
    detached = h + ".." + s
    bundle["signature"] = {
        "type": [{"system": "urn:iso-astm:E1762-95:2013",
                  "code": "1.2.840.10065.1.12.1.5"}],
        "when": when,
        "who": {"identifier": {"system": URA_SYSTEM, "value": ura}},
        "targetFormat": TARGET_FORMAT,
        "sigFormat": "application/jose",
        "data": base64.b64encode(detached.encode()).decode(),
    }
    return write_json(out, bundle, indent=2)


def test_jwcrypto_signature_verifies_with_pzpgw(pki, tmp):
    path = jwcrypto_signed(pki, BIG, tmp / "jw.json")
    p = verify(pki, path, "--expect-ura", "90000002")
    assert p.returncode == 0, p.stderr
    assert b"90000002" in p.stdout
    if pki.kind == "rsa":
        path = jwcrypto_signed(pki, SMALL, tmp / "rs.json", alg="RS256")
        p = verify(pki, path)
        assert p.returncode == 0, p.stderr


def test_signed_before_certificate_was_valid_fails(pki, tmp):
    # jwcrypto happily signs with a sigT before the certificate existed.
    path = jwcrypto_signed(pki, SMALL, tmp / "early.json",
                           when="2020-01-01T00:00:00Z")
    p = verify(pki, path)
    assert p.returncode == 1 and b"(expired)" in p.stderr, p.stderr
    assert b"signing time" in p.stderr


def test_hs256_and_none_are_refused(pki, tmp):
    secret = jwk.JWK.generate(kty="oct", size=256)
    path = jwcrypto_signed(pki, SMALL, tmp / "hs.json", alg="HS256",
                           key=secret)
    p = verify(pki, path)
    assert p.returncode == 1 and b"(algorithm)" in p.stderr, p.stderr

    # alg none: header with an empty signature part.
    signed = sign(pki, SMALL, tmp / "signed.json")
    b = load(signed)
    hdr = json.loads(b64url_dec(jws_of(signed).split(".")[0]))
    hdr["alg"] = "none"
    token = b64url(json.dumps(hdr).encode()) + ".."
    b["signature"]["data"] = base64.b64encode(token.encode()).decode()
    p = verify(pki, write_json(tmp / "none.json", b))
    assert p.returncode == 1, p.stderr
    assert b"(algorithm)" in p.stderr or b"(malformed)" in p.stderr
    token = b64url(json.dumps(hdr).encode()) + "..AAAA"
    b["signature"]["data"] = base64.b64encode(token.encode()).decode()
    p = verify(pki, write_json(tmp / "none2.json", b))
    assert p.returncode == 1 and b"(algorithm)" in p.stderr, p.stderr


# ---- what must still verify ----

def reorder(obj):
    if isinstance(obj, dict):
        return {k: reorder(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reorder(v) for v in obj]
    return obj


def test_insignificant_changes_still_verify(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json")
    with open(signed, encoding="utf-8") as f:
        text = f.read()
    b = load(signed)
    # Keys in reverse order, no whitespace, \u escapes for non-ASCII.
    with open(tmp / "r.json", "w") as f:
        f.write(dumps(reorder(b), separators=(",", ":"), ensure_ascii=True))
    p = verify(pki, tmp / "r.json")
    assert p.returncode == 0, p.stderr
    # Wide indentation.
    p = verify(pki, write_json(tmp / "w.json", b, indent=8))
    assert p.returncode == 0, p.stderr
    # meta and text may change: they are not signed.
    b2 = copy.deepcopy(b)
    b2["meta"] = {"lastUpdated": "2030-01-01T00:00:00Z", "versionId": "9"}
    b2["text"] = {"status": "generated", "div": "<div>x</div>"}
    p = verify(pki, write_json(tmp / "m.json", b2))
    assert p.returncode == 0, p.stderr
    # But 1.50 is not 1.5: the raw text keeps its trailing zero.
    assert "1.50" in text


# ---- what must fail ----

def mutate_and_verify(pki, tmp, signed, fn, name):
    b = load(signed)
    fn(b)
    return verify(pki, write_json(tmp / (name + ".json"), b))


@pytest.mark.parametrize("name,fn", [
    ("value", lambda b: b["entry"][1]["resource"].update(
        status="inactive")),
    ("decimal", lambda b: b["entry"][2]["resource"]["valueQuantity"].update(
        value=1.5)),
    ("added", lambda b: b["entry"][0]["resource"].update(
        deceasedBoolean=True)),
    ("removed", lambda b: b["entry"].pop()),
    ("rootid", lambda b: b.update(id="other")),
])
def test_content_changes_fail(pki, tmp, name, fn):
    signed = sign(pki, SMALL, tmp / "signed.json")
    p = mutate_and_verify(pki, tmp, signed, fn, name)
    assert p.returncode == 1, p.stderr
    assert b"(signature)" in p.stderr


def test_decimal_precision_is_signed(pki, tmp):
    # json.load would turn 1.50 into 1.5; edit the text instead.
    signed = sign(pki, SMALL, tmp / "signed.json")
    with open(signed, encoding="utf-8") as f:
        text = f.read()
    assert text.count("1.50") == 1
    (tmp / "d.json").write_text(text.replace("1.50", "1.5"))
    p = verify(pki, tmp / "d.json")
    assert p.returncode == 1 and b"(signature)" in p.stderr


def test_swapped_certificate_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json")
    b = load(signed)
    hdr, _, sig = jws_of(signed).split(".")
    header = json.loads(b64url_dec(hdr))
    gp1 = pem_certs(pki.p("gp1.crt"))
    header["x5c"] = gp1
    header["x5t#S256"] = b64url(hashlib.sha256(
        base64.b64decode(gp1[0])).digest())
    token = b64url(json.dumps(header).encode()) + ".." + sig
    b["signature"]["data"] = base64.b64encode(token.encode()).decode()
    b["signature"]["who"]["identifier"]["value"] = "90000003"
    p = verify(pki, write_json(tmp / "swap.json", b))
    assert p.returncode == 1 and b"(signature)" in p.stderr, p.stderr


def test_signature_copied_onto_other_bundle_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json")
    sig = load(signed)["signature"]
    other = load(BIG)
    other["signature"] = sig
    p = verify(pki, write_json(tmp / "copy.json", other))
    assert p.returncode == 1 and b"(signature)" in p.stderr


def test_expired_certificate_fails(pki, tmp):
    # Signed while the certificate was valid; it has expired since.
    signed = sign(pki, SMALL, tmp / "signed.json", name="expired",
                  extra=("--time", "2020-06-01T12:00:00Z"))
    p = verify(pki, signed)
    assert p.returncode == 1 and b"(expired)" in p.stderr, p.stderr
    # Signing now with it is refused.
    p = run("sign", "--key", pki.p("expired.key"), "--cert",
            pki.p("expired.crt"), SMALL)
    assert p.returncode == 1 and b"not valid" in p.stderr


def test_revoked_certificate_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json", name="revoked")
    p = verify(pki, signed, "--crl", pki.p("crl.pem"))
    assert p.returncode == 1 and b"(revoked)" in p.stderr, p.stderr
    # Without the CRL the chain itself is fine: the CRL is what decides.
    assert verify(pki, signed).returncode == 0
    # A certificate not on the CRL passes with it.
    ok = sign(pki, SMALL, tmp / "ok.json")
    assert verify(pki, ok, "--crl", pki.p("crl.pem")).returncode == 0


def test_untrusted_chain_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json", name="otherca")
    p = verify(pki, signed)
    assert p.returncode == 1 and b"(untrusted)" in p.stderr, p.stderr


def test_wrong_ura_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json")
    p = verify(pki, signed, "--expect-ura", "90000003")
    assert p.returncode == 1 and b"(ura)" in p.stderr
    assert verify(pki, signed, "--expect-ura", "90000002").returncode == 0
    # who.identifier claiming another organisation than the certificate.
    p = mutate_and_verify(
        pki, tmp, signed,
        lambda b: b["signature"]["who"]["identifier"].update(
            value="90000003"), "who")
    assert p.returncode == 1 and b"(ura)" in p.stderr


def test_future_sigt_fails(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json",
                  extra=("--time", "2027-06-01T00:00:00Z"))
    p = verify(pki, signed)
    assert p.returncode == 1 and b"(time)" in p.stderr, p.stderr


def test_missing_or_double_signature_fails(pki, tmp):
    p = verify(pki, SMALL)
    assert p.returncode == 1 and b"(missing)" in p.stderr
    signed = sign(pki, SMALL, tmp / "signed.json")
    p = mutate_and_verify(pki, tmp, signed,
                          lambda b: b.update(signature=[b["signature"]] * 2),
                          "two")
    assert p.returncode == 1 and b"(missing)" in p.stderr


# ---- placements, keys ----

def test_stu3_placement(pki, tmp):
    signed = sign(pki, SMALL, tmp / "signed.json",
                  extra=("--fhir", "stu3", "--purpose", "author"))
    s = load(signed)["signature"]
    assert s["contentType"] == "application/jose"
    assert "blob" in s and "data" not in s and "sigFormat" not in s
    assert s["whoReference"]["identifier"]["value"] == "90000002"
    assert s["type"][0]["code"] == "1.2.840.10065.1.12.1.1"
    p = verify(pki, signed)
    assert p.returncode == 0 and b"author" in p.stdout, p.stderr


def test_provenance(pki, tmp):
    prov = tmp / "prov.json"
    signed = sign(pki, SMALL, tmp / "signed.json",
                  extra=("--provenance", str(prov)))
    pv = load(prov)
    assert pv["resourceType"] == "Provenance"
    assert pv["target"][0]["reference"] == "Bundle/pzp-sign-small"
    b = load(signed)
    assert pv["signature"][0] == b["signature"]
    assert "Provenance" not in json.dumps(b)
    # Verify against the Provenance, even with the Bundle's own removed.
    del b["signature"]
    plain = write_json(tmp / "plain.json", b)
    p = verify(pki, plain, "--provenance", str(prov))
    assert p.returncode == 0, p.stderr
    # A Provenance for another Bundle does not apply.
    b["id"] = "someone-else"
    b["identifier"]["value"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
    p = verify(pki, write_json(tmp / "o.json", b), "--provenance", str(prov))
    assert p.returncode == 1 and b"(target)" in p.stderr


def test_key_file_permissions(pki, tmp):
    key = tmp / "k.key"
    shutil.copy(pki.p("hospital.key"), key)
    os.chmod(key, 0o640)
    p = run("sign", "--key", str(key), "--cert", pki.p("hospital.crt"),
            SMALL)
    assert p.returncode != 0 and b"group or others" in p.stderr
    os.chmod(key, 0o600)
    p = run("sign", "--key", str(key), "--cert", pki.p("hospital.crt"),
            SMALL)
    assert p.returncode == 0, p.stderr
    # A key that does not belong to the certificate.
    p = run("sign", "--key", pki.p("gp1.key"), "--cert",
            pki.p("hospital.crt"), SMALL)
    assert p.returncode == 1 and b"does not belong" in p.stderr


def test_usage_errors():
    assert run("verify", SMALL).returncode == 2
    assert run("sign", SMALL).returncode == 2
    assert run("canon").returncode == 2
    assert run("canon", "/nonexistent/file.json").returncode == 2


def test_config_names_the_signing_key(pki, tmp):
    """-c takes [signing] (defaulting to [listen]'s key and certificate)
    for sign, and [listen] trust and crl for verify."""
    conf_dir = tmp / "conf"
    conf_dir.mkdir()
    shutil.copytree(pki.dir, conf_dir / "dev-pki")
    conf = conf_dir / "pzpgw.conf"
    p = subprocess.run(["sh", os.path.join(SRCDIR, "certs", "dev-config.sh"),
                        str(conf_dir)], capture_output=True, check=True)
    conf.write_bytes(p.stdout)
    p = run("sign", "-c", str(conf), SMALL, check=0)
    (tmp / "s.json").write_bytes(p.stdout)
    assert load(tmp / "s.json")["signature"]["who"]["identifier"][
        "value"] == "90000001"
    p = run("verify", "-c", str(conf), "--expect-ura", "90000001",
            str(tmp / "s.json"), check=0)
    # A separate signing key: the hospital's, named in [signing].
    text = conf.read_text()
    conf.write_text(text + "\n[signing]\nkey = dev-pki/hospital.key\n"
                    "certificate = dev-pki/hospital.crt\n")
    p = run("sign", "-c", str(conf), SMALL, check=0)
    (tmp / "h.json").write_bytes(p.stdout)
    p = run("verify", "-c", str(conf), "--expect-ura", "90000002",
            str(tmp / "h.json"), check=0)


def test_key_usage_without_digital_signature_fails(pki, tmp):
    """A certificate whose keyUsage does not allow digitalSignature: pzpgw
    refuses to sign with it, and a signature jwcrypto makes with it does
    not verify."""
    key, csr, ext, crt = (str(tmp / n) for n in
                          ("ku.key", "ku.csr", "ku.ext", "ku.crt"))
    if pki.kind == "ec":
        gen = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        usage = "keyAgreement"
    else:
        gen = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        usage = "keyEncipherment"
    subprocess.run(["openssl", "genpkey"] + gen + ["-out", key], check=True,
                   capture_output=True)
    os.chmod(key, 0o600)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-subj",
                    "/C=NL/O=Test Ziekenhuis/CN=ku.pzpgw.test", "-out", csr],
                   check=True, capture_output=True)
    with open(ext, "w") as f:
        f.write("[leaf]\nbasicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, %s\n"
                "subjectAltName = otherName:2.5.5.5;IA5STRING:"
                "2.16.528.1.1003.1.3.5.5.5-1-10000002-S-90000002-00.000-"
                "01000002\n" % usage)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                    pki.p("uzi-server-ca.pem"), "-CAkey",
                    pki.p("uzi-server-ca.key"), "-days", "30", "-extfile",
                    ext, "-extensions", "leaf", "-out", crt],
                   check=True, capture_output=True)
    p = run("sign", "--key", key, "--cert", crt, SMALL)
    assert p.returncode == 1 and b"digitalSignature" in p.stderr, p.stderr

    # jwcrypto signs anyway; pzpgw verify names the certificate check.
    leaf = pem_certs(crt)
    path = jwcrypto_signed(
        pki, SMALL, tmp / "ku.json",
        key=jwk.JWK.from_pem(open(key, "rb").read()),
        header_extra={"x5c": leaf + pem_certs(pki.p("uzi-server-ca.pem"))})
    p = verify(pki, path)
    assert p.returncode == 1 and b"(certificate)" in p.stderr, p.stderr


def test_key_as_file_uri(pki, tmp):
    """The key goes through OpenSSL's store API: a file: URI works like a
    path (and its mode is still checked)."""
    p = run("sign", "--key", "file:" + pki.p("hospital.key"), "--cert",
            pki.p("hospital.crt"), SMALL)
    assert p.returncode == 0, p.stderr
    key = tmp / "open.key"
    shutil.copy(pki.p("hospital.key"), key)
    os.chmod(key, 0o644)
    p = run("sign", "--key", "file:" + str(key), "--cert",
            pki.p("hospital.crt"), SMALL)
    assert p.returncode != 0 and b"group or others" in p.stderr
