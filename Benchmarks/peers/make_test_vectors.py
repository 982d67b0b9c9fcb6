#!/usr/bin/env python3
"""Makes the test vectors of docs/encryption.md with an encryptor written from that page alone.

    Benchmarks/peers/.venv/bin/python Benchmarks/peers/make_test_vectors.py [--key vector-key.pem] > vectors.md

Vector 1 wraps the data key with RSA-OAEP-SHA256, whose padding is random: each run gives
another (equally valid) envelope. The passphrase vectors are deterministic. DPKit's test
(Tests/DPCryptoTests/TestVectorTests.swift) decrypts every envelope, checks each intermediate
value and re-encrypts to the same bytes.
"""

import argparse
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"DPKITENV"


def entry(etype, body):
    return bytes([etype]) + struct.pack(">H", len(body)) + body


def encrypt(plaintext, data_key, nonce_base, entries, log2):
    commitment = hmac.new(data_key, b"DPKit envelope v1 key commitment", hashlib.sha256).digest()
    header = MAGIC + bytes([1, log2]) + nonce_base + commitment + struct.pack(">H", len(entries)) + b"".join(entries)
    header_hash = hashlib.sha256(header).digest()
    size = 1 << log2
    chunks = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]
    aead = AESGCM(data_key)
    out, intermediates = bytearray(header), {}
    for i, chunk in enumerate(chunks):
        final = i == len(chunks) - 1
        n = bytes(a ^ b for a, b in zip(nonce_base, bytes(4) + struct.pack(">Q", i)))
        aad = header_hash + struct.pack(">Q", i) + (b"\x01" if final else b"\x00")
        out += aead.encrypt(n, chunk, aad)
        if i == 0 or final:
            intermediates[f"nonce_{i}"] = n
            intermediates[f"aad_{i}"] = aad
    return bytes(out), commitment, header_hash, intermediates


def block(title, fields):
    lines = ["```text", f"# {title}"]
    for name, value in fields:
        if isinstance(value, bytes):
            text = value.hex()
            lines.append(f"{name} = {text[:64]}")
            lines += [f"    {text[i : i + 64]}" for i in range(64, len(text), 64)]
        else:
            lines.append(f"{name} = {value}")
    lines.append("```")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", help="an RSA-3072 private key PEM to use (default: a new one)")
    args = ap.parse_args()
    if args.key:
        with open(args.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = []

    # Vector 1: RSA recipient, 150 bytes = chunks of 64, 64 and 22.
    plaintext = (b"DPKit envelope test vector 1: three chunks of 64, 64 and 22 bytes. " * 3)[:150]
    data_key, nonce_base = bytes(range(0x00, 0x20)), bytes(range(0xA0, 0xAC))
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    e = entry(1, hashlib.sha256(spki).digest() + key.public_key().encrypt(data_key, oaep))
    env, commitment, hh, inter = encrypt(plaintext, data_key, nonce_base, [e], 6)
    out.append("Vector 1: one RSA-3072 recipient (this private key), 150 bytes in three chunks.\n")
    out.append("```text\n" + pem.decode().strip() + "\n```\n")
    out.append(
        block(
            "vector 1",
            [("chunk_size_log2", 6), ("plaintext", plaintext), ("data_key", data_key), ("nonce_base", nonce_base),
             ("key_id", hashlib.sha256(spki).digest()), ("key_commitment", commitment), ("entry_0", e),
             ("header_sha256", hh)] + sorted(inter.items(), key=lambda kv: (kv[0][-1], kv[0])) + [("envelope", env)],
        )
    )

    # Vectors 2 and 3: a passphrase (scrypt N = 2^10, r = 8, p = 1 to keep tests fast; DPKit
    # writes N = 2^17): 128 bytes (two full chunks, the last one full) and an empty file.
    for number, plaintext in ((2, bytes(range(128))), (3, b"")):
        passphrase = b"correct horse battery staple"
        salt = bytes(range(0x10 * number, 0x10 * number + 16))
        data_key, nonce_base = bytes(range(0x20 * number, 0x20 * number + 32)), bytes(range(0xB0, 0xBC))
        kek = Scrypt(salt=salt, length=32, n=1 << 10, r=8, p=1).derive(passphrase)
        wrapped = AESGCM(kek).encrypt(bytes(12), data_key, b"DPKit envelope v1 scrypt")
        e = entry(2, bytes([10, 8, 1]) + salt + wrapped)
        env, commitment, hh, inter = encrypt(plaintext, data_key, nonce_base, [e], 6)
        what = "128 bytes in two full chunks" if plaintext else "an empty file (one empty chunk)"
        out.append(f"\nVector {number}: a passphrase, {what}.\n")
        out.append(
            block(
                f"vector {number}",
                [("chunk_size_log2", 6), ("passphrase_utf8", passphrase.decode()), ("plaintext", plaintext or "(empty)"),
                 ("data_key", data_key), ("nonce_base", nonce_base), ("scrypt_log2_n", 10), ("scrypt_r", 8),
                 ("scrypt_p", 1), ("salt", salt), ("kek", kek), ("key_commitment", commitment), ("entry_0", e),
                 ("header_sha256", hh)] + sorted(inter.items(), key=lambda kv: (kv[0][-1], kv[0])) + [("envelope", env)],
            )
        )
    print("\n".join(out))


if __name__ == "__main__":
    main()
