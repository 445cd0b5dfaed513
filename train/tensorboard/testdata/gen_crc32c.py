"""Writes crc32c.json: CRC32C (Castagnoli) and TFRecord's masked CRC of the
test vectors of RFC 3720 appendix B.4 and the common check string.

The CRC is computed bit by bit from its definition (reflected polynomial
0x82F63B78, initial value and final XOR 0xFFFFFFFF) and checked against
the values the RFC publishes; the mask is TFRecord's
((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2^32.

Run: /usr/bin/python3 train/tensorboard/testdata/gen_crc32c.py
"""
import json
import os


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# iSCSI read PDU of RFC 3720 B.4.
read_pdu = bytes([
    0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
])

# name, bytes, CRC published for it
vectors = [
    ("32 bytes of zeros (RFC 3720 B.4)", bytes(32), 0x8A9136AA),
    ("32 bytes of 0xff (RFC 3720 B.4)", bytes([0xFF] * 32), 0x62A8AB43),
    ("32 incrementing bytes 0..31 (RFC 3720 B.4)", bytes(range(32)), 0x46DD794E),
    ("32 decrementing bytes 31..0 (RFC 3720 B.4)", bytes(range(31, -1, -1)), 0x113FDB5C),
    ("iSCSI read PDU (RFC 3720 B.4)", read_pdu, 0xD9963A56),
    ("check string 123456789", b"123456789", 0xE3069283),
    ("empty", b"", 0x00000000),
]

out = []
for name, data, published in vectors:
    c = crc32c(data)
    assert c == published, (name, hex(c), hex(published))
    out.append({"name": name, "hex": data.hex(), "crc32c": c, "masked": mask(c)})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crc32c.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", path)
