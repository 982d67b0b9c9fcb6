#!/usr/bin/env python3
"""An independent decryptor of DPKit envelopes, written from docs/encryption.md alone.

Uses only Python's standard library and the `cryptography` package (PyPI). Interoperability
check: a file that `dpkit encrypt` wrote decrypts here to the same bytes.

    Benchmarks/peers/.venv/bin/python Benchmarks/peers/decrypt_envelope.py \
        --key keys/recipient.key.pem FILE.dpkenc --output FILE [--expect-sha256 HEX]
    ... --passphrase-file pw.txt FILE.dpkenc --output FILE

Exit status 0 when the whole file authenticated (the output is then written), 1 otherwise.
Set up: python3 -m venv Benchmarks/peers/.venv && Benchmarks/peers/.venv/bin/pip install cryptography
"""

import argparse
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.exceptions import InvalidTag

MAGIC = b"DPKITENV"
COMMITMENT_MESSAGE = b"DPKit envelope v1 key commitment"
SCRYPT_AAD = b"DPKit envelope v1 scrypt"


class EnvelopeError(Exception):
    pass


def read_exactly(f, n, what):
    data = f.read(n)
    if len(data) != n:
        raise EnvelopeError(f"the file ends inside the header ({what})")
    return data


def parse_header(f):
    """Returns (header bytes, chunk_size_log2, nonce_base, key_commitment, entries)."""
    raw = bytearray()

    def take(n, what):
        b = read_exactly(f, n, what)
        raw.extend(b)
        return b

    if take(8, "magic") != MAGIC:
        raise EnvelopeError("not a DPKit envelope (no DPKITENV magic)")
    version = take(1, "version")[0]
    if version != 1:
        raise EnvelopeError(f"version {version}, this reader knows 1")
    log2 = take(1, "chunk size")[0]
    if not 6 <= log2 <= 24:
        raise EnvelopeError(f"chunk_size_log2 {log2} outside 6..24")
    nonce_base = take(12, "nonce base")
    commitment = take(32, "key commitment")
    (count,) = struct.unpack(">H", take(2, "entry count"))
    if count < 1:
        raise EnvelopeError("no recipient entry")
    entries = []
    for i in range(count):
        etype = take(1, f"entry {i} type")[0]
        (length,) = struct.unpack(">H", take(2, f"entry {i} length"))
        body = take(length, f"entry {i} body")
        if etype == 1:
            if length < 32 + 384:
                raise EnvelopeError(f"RSA entry {i} too short")
            entries.append(("rsa", body[:32], body[32:]))
        elif etype == 2:
            if length != 67:
                raise EnvelopeError(f"scrypt entry {i} has {length} bytes, not 67")
            log2_n, r, p = body[0], body[1], body[2]
            if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16) or 128 * r * ((1 << log2_n) + p) > (1 << 30):
                raise EnvelopeError(f"scrypt entry {i} parameters beyond the limits")
            entries.append(("scrypt", (log2_n, r, p), body[3:19], body[19:]))
        else:
            raise EnvelopeError(f"entry {i} has unknown type {etype}")
    return bytes(raw), log2, nonce_base, commitment, entries


def key_id(public_key):
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def unwrap(entries, commitment, private_key=None, passphrase=None):
    data_key = None
    if private_key is not None:
        kid = key_id(private_key.public_key())
        wrapped = next((e[2] for e in entries if e[0] == "rsa" and e[1] == kid), None)
        if wrapped is None:
            ids = [e[1].hex()[:16] for e in entries if e[0] == "rsa"]
            raise EnvelopeError(f"not encrypted for this key ({kid.hex()[:16]}); recipients: {ids}")
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        try:
            data_key = private_key.decrypt(wrapped, oaep)
        except ValueError:
            raise EnvelopeError("the RSA entry does not decrypt")
    else:
        for e in entries:
            if e[0] != "scrypt":
                continue
            (log2_n, r, p), salt, wrapped = e[1], e[2], e[3]
            kek = Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)
            try:
                data_key = AESGCM(kek).decrypt(bytes(12), wrapped, SCRYPT_AAD)
                break
            except InvalidTag:
                continue
        if data_key is None:
            raise EnvelopeError("wrong passphrase, or no passphrase entry")
    if len(data_key) != 32:
        raise EnvelopeError("the data key is not 32 bytes")
    expected = hmac.new(data_key, COMMITMENT_MESSAGE, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, commitment):
        raise EnvelopeError("the data key does not match the key commitment")
    return data_key


def nonce(nonce_base, i):
    return bytes(a ^ b for a, b in zip(nonce_base, b"\x00\x00\x00\x00" + struct.pack(">Q", i)))


def decrypt(f, out, private_key=None, passphrase=None):
    """Streams the plaintext of envelope `f` into `out`; raises EnvelopeError on any failure."""
    header, log2, nonce_base, commitment, entries = parse_header(f)
    aead = AESGCM(unwrap(entries, commitment, private_key, passphrase))
    header_hash = hashlib.sha256(header).digest()
    record = (1 << log2) + 16
    current = f.read(record)
    if not current:
        raise EnvelopeError("truncated: no chunk after the header")
    i = 0
    while True:
        following = f.read(record) if len(current) == record else b""
        final = len(following) == 0
        aad = header_hash + struct.pack(">Q", i) + (b"\x01" if final else b"\x00")
        try:
            out.write(aead.decrypt(nonce(nonce_base, i), current, aad))
        except InvalidTag:
            raise EnvelopeError(f"chunk {i} does not authenticate (modified, truncated, reordered or extended)")
        if final:
            return i + 1
        current, i = following, i + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("envelope")
    ap.add_argument("--output", required=True)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--key", help="RSA private key, PEM (PKCS #8)")
    group.add_argument("--passphrase-file", help="file whose first line is the passphrase")
    ap.add_argument("--expect-sha256", help="fail unless the plaintext has this SHA-256")
    args = ap.parse_args()

    private_key = passphrase = None
    if args.key:
        with open(args.key, "rb") as k:
            private_key = serialization.load_pem_private_key(k.read(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            sys.exit(f"{args.key}: not an RSA private key")
    else:
        with open(args.passphrase_file, "rb") as p:
            passphrase = p.read().split(b"\n")[0].rstrip(b"\r")

    if os.path.exists(args.output):
        sys.exit(f"{args.output} exists; not overwritten")
    tmp = args.output + ".partial"
    try:
        with open(args.envelope, "rb") as f, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            chunks = decrypt(f, out, private_key, passphrase)
        with open(tmp, "rb") as t:
            digest = hashlib.sha256(t.read()).hexdigest()
        if args.expect_sha256 and digest != args.expect_sha256.lower():
            raise EnvelopeError(f"plaintext SHA-256 {digest}, expected {args.expect_sha256}")
        os.rename(tmp, args.output)
    except EnvelopeError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        print(f"{args.envelope}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{args.output}: {chunks} chunks authenticated, {os.path.getsize(args.output)} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
