#!/usr/bin/env python3
"""Independent cross-check of the golden receipt (receipt-v1.cbor) and job spec
(job-spec-v1.cbor), with no Vouch code: CBOR decoding and canonical re-encoding by `cbor2`,
ed25519 by `cryptography` (OpenSSL), hashing by `hashlib`. It follows docs/receipt.md:

  signed bytes = b"vouch-receipt-v1\\0" || canonical DAG-CBOR of the receipt map without `signature`
  report data  = SHA-256(b"vouch-report-data-v1\\0" || node_key || nonce)
  job CID      = CIDv1(dag-cbor, sha2-256(canonical DAG-CBOR of `spec`))
  receipt CID  = CIDv1(dag-cbor, sha2-256(receipt bytes))

Usage: python3 check.py   (needs `pip install cbor2 cryptography`; exits 1 if a check fails)
"""

import base64
import hashlib
import pathlib
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = pathlib.Path(__file__).resolve().parent
SIGNATURE_DOMAIN = b"vouch-receipt-v1\x00"
REPORT_DATA_DOMAIN = b"vouch-report-data-v1\x00"
SEED = bytes([0x01]) * 32  # the golden node key's ed25519 seed
DAG_CBOR_SHA256_PREFIX = bytes([0x01, 0x71, 0x12, 0x20])  # CIDv1, dag-cbor, sha2-256, 32 bytes

failures = 0


def check(name, ok, detail):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")


def canonical(value):
    # RFC 7049 canonical CBOR: shortest integers and lengths, map keys sorted by length then
    # bytes: for text keys this is DAG-CBOR's ordering.
    return cbor2.dumps(value, canonical=True)


def cid_bytes(data):
    return DAG_CBOR_SHA256_PREFIX + hashlib.sha256(data).digest()


def cid_string(binary):
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def link(tag):
    # DAG-CBOR links are tag 42 over a byte string: 0x00 followed by the binary CID.
    assert isinstance(tag, cbor2.CBORTag) and tag.tag == 42 and tag.value[0] == 0, tag
    return tag.value[1:]


def verifies(public_key, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        return False


raw = (HERE / "receipt-v1.cbor").read_bytes()
receipt = cbor2.loads(raw)
check("canonical", canonical(receipt) == raw, f"cbor2 re-encodes the {len(raw)} bytes identically")
check("version", receipt["version"] == 1 and receipt["spec"]["version"] == 1, "receipt and spec version 1")

body = {k: v for k, v in receipt.items() if k != "signature"}
signed = SIGNATURE_DOMAIN + canonical(body)
node_key = receipt["node_key"]
signature = receipt["signature"]
seed_key = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
check("node key", node_key == seed_key, f"{node_key.hex()} is the public key of seed 01*32")
check("signature", verifies(node_key, signature, signed), f"ed25519 over {len(signed)} signed bytes: {signature.hex()}")
tampered = bytearray(signed)
tampered[-1] ^= 1
check("tamper", not verifies(node_key, signature, bytes(tampered)), "one flipped bit in the signed bytes fails")
check("re-sign", Ed25519PrivateKey.from_private_bytes(SEED).sign(signed) == signature,
      "signing the same bytes with the seed gives the same signature (ed25519 is deterministic)")

spec_bytes = canonical(receipt["spec"])
job = cid_bytes(spec_bytes)
check("job CID", link(receipt["job"]) == job, f"job {cid_string(job)} = CID of the inline spec")
spec_file = (HERE / "job-spec-v1.cbor").read_bytes()
check("job spec file", spec_file == spec_bytes, f"job-spec-v1.cbor is the inline spec's {len(spec_file)} bytes")

evidence = receipt["evidence"]
expected = hashlib.sha256(REPORT_DATA_DOMAIN + node_key + evidence["nonce"]).digest()
check("evidence", evidence["technology"] == "none" and "body" not in evidence, "technology none, no body")
check("report data", evidence["report_data"] == expected, f"{expected.hex()} binds the node key and nonce")

print(f"job CID {cid_string(job)}")
print(f"receipt CID {cid_string(cid_bytes(raw))}")
sys.exit(1 if failures else 0)
