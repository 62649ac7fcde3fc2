"""Just enough DER for PKCS #8 as notary writes it: PBES2 with PBKDF2 (HMAC-SHA1,
notary's only PRF, so left implicit) and AES-256-CBC around a PrivateKeyInfo."""

from __future__ import annotations

SEQUENCE, INTEGER, OCTET_STRING, OID = 0x30, 0x02, 0x04, 0x06


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def integer(v: int) -> bytes:
    raw = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return tlv(INTEGER, raw)


def octets(v: bytes) -> bytes:
    return tlv(OCTET_STRING, v)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def read(data: bytes) -> list[tuple[int, bytes]]:
    """The TLVs one after another in `data` (a constructed value's contents)."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4:
                raise ValueError("unsupported DER length")
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        if i + n > len(data):
            raise ValueError("truncated DER")
        out.append((tag, data[i:i + n]))
        i += n
    return out


def one(data: bytes, tag: int) -> bytes:
    """The contents of the single TLV `data` holds, which must be a `tag`."""
    items = read(data)
    if not items or items[0][0] != tag:
        raise ValueError("unexpected DER")
    return items[0][1]


PBES2 = oid("1.2.840.113549.1.5.13")
PBKDF2 = oid("1.2.840.113549.1.5.12")
AES256_CBC = oid("2.16.840.1.101.3.4.1.42")
