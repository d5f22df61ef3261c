#!/usr/bin/env python3
"""Independent model of shared/PROTOCOL.md (sections 2 to 7, UDP column) that
writes request/response pairs for core/tests/wire_vectors.rs.

Regenerate (from the repository root; the output must not change byte for byte):

    python3 scripts/vectors/gen_wire_vectors.py > core/tests/vectors/wire_pairs.txt

Only the standard library (zlib, hashlib, hmac, random) and the `cryptography`
package are used; nothing here comes from, or calls, the Rust code under test.
Every case also states the status it is meant to produce, and the script asserts
that the model agrees, so a slip in a request builder cannot silently turn a case
into a different one.

Server under test: raida id 7, coin id 0x0006, max_body_size 65536 (a case may
override max_body_size with a `max_body_size N` line: the body length fields are
16 bits wide, so a declared length above 65536 cannot be expressed on the wire and
the limit is lowered for the cases that test it).

Commands: echo (0,0) -> 250, no output; version (0,1) -> 250, b"0.1.0   ";
mirror (15,1) -> 250, output = payload.

Decisions where PROTOCOL.md leaves room (see also the report that came with it):
- Types 1, 2: the challenge is decrypted body[0..16] XOR AN and the response
  signature is exactly that value (one XOR, as the deployed server does), both on
  success and on 37.
- A command that returns an empty output produces no body (size field 0, no
  trailer), like a command that returns no output.
- 48-byte responses: byte 16 always echoes request byte 16; bytes 24..45 are the
  22 random bytes on every status (27 included), except that a type-5 request that
  got past the encryption-type check has its second coin (request bytes 24..28) at
  24..28 and random[5..22] at 29..45. Type-5 requests that fail a rule before the
  encryption-type check are deliberately NOT in this file: PROTOCOL.md does not say
  whether their bytes 24..28 are the second coin, zeros or random.
- First coin den/serial (bytes 17..21) are set from the request for every status
  after the encryption-type check (25, 16, 33, 204, 250), including 25 when the
  first coin itself is unknown.
"""

import hashlib
import hmac
import random
import sys
import zlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

RAIDA_ID = 7
COIN_ID = 0x0006
MAX_BODY = 65536
TRAILER = b"\x3e\x3e"
VERSION = b"0.1.0   "

R = random.Random(1234)


def rb(n):
    return bytes(R.getrandbits(8) for _ in range(n))


def ctr(key, iv, data):
    """AES-CTR (key length picks AES-128 or AES-256); OpenSSL's CTR treats the whole
    16-byte block as one big-endian counter, as PROTOCOL.md requires."""
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def be(n, width):
    return n.to_bytes(width, "big")


# ------------------------------------------------------------------------------
# Key store contents.
# ------------------------------------------------------------------------------

AN1, AN2, AN3, AN4 = rb(16), rb(16), rb(16), rb(16)
LOCKER = rb(16)
COINS = {
    (1, 1): AN1,
    (1, 2): AN2,
    (-1, 70000): AN3,
    (0, 0x100 * 1024 + 5): AN4,
}
LOCKERS = [LOCKER]
assert all(an[:5] != LOCKER[:5] for an in COINS.values())

COMMANDS = {(0, 0): "echo", (0, 1): "version", (15, 1): "mirror"}


def run_command(group, command, payload):
    name = COMMANDS[(group, command)]
    if name == "echo":
        return 250, b""
    if name == "version":
        return 250, VERSION
    return 250, bytes(payload)


def i8(b):
    return b - 256 if b >= 128 else b


# ------------------------------------------------------------------------------
# The model: one UDP datagram in, at most one datagram out.
# ------------------------------------------------------------------------------


def serve(d, elapsed, rnd, max_body):
    """Returns the response bytes, or None when nothing is sent."""
    assert len(rnd) == 22
    if len(d) < 17:
        return None
    enc = d[16]
    hlen = 32 if enc in (0, 1, 2) else 48
    if len(d) < hlen:
        return None

    state = {"group": 0, "coin1": None, "coin2": None, "sig": bytes(16)}

    def respond(status, body=b"", status27=False):
        if hlen == 32:
            h = bytearray(32)
            h[0] = RAIDA_ID
            h[1] = 0
            h[2] = status
            h[3] = state["group"]
            h[4:6] = b"\x00\x01"
            h[6:8] = d[30:32]
            h[8] = 0
            h[9:12] = be(len(body), 3)
            h[12:16] = be(elapsed, 4)
            h[16:32] = state["sig"]
            return bytes(h) + body
        h = bytearray(48)
        h[0] = RAIDA_ID
        h[1] = 0
        h[2] = status
        h[3] = state["group"]
        h[4:8] = be(elapsed, 4)
        h[8] = 0
        h[9:12] = be(len(body), 3)
        h[12:16] = bytes(4)
        h[16] = enc
        if state["coin1"] is not None:
            den, sn = state["coin1"]
            h[17] = den & 0xFF
            h[18:22] = be(sn, 4)
        h[22:24] = bytes(2)
        if state["coin2"] is not None:
            den2, sn2 = state["coin2"]
            h[24] = den2 & 0xFF
            h[25:29] = be(sn2, 4)
            h[29:46] = rnd[5:22]
        else:
            h[24:46] = rnd
        h[46:48] = bytes(2) if status27 else d[46:48]
        return bytes(h) + body

    # Section 2 rules, in the stated order (group 5 before shard 4).
    if d[0] != 1:
        return respond(255)
    if d[1] != 0:
        return respond(2)
    if d[2] != RAIDA_ID:
        return respond(3)
    if d[4] > 15:
        return respond(5)
    if d[3] > 3:
        return respond(4)
    if (d[4], d[5]) not in COMMANDS:
        return respond(6)
    state["group"] = d[4]
    if int.from_bytes(d[6:8], "big") != COIN_ID:
        return respond(7)
    if hlen == 48 and enc not in (4, 5):
        return respond(27, status27=True)

    # Key lookup (header time).
    an = None
    key = None
    if enc == 0:
        blen = int.from_bytes(d[22:24], "big")
    elif enc in (1, 2):
        blen = int.from_bytes(d[22:24], "big")
        if enc == 1:
            an = COINS.get((i8(d[17]), int.from_bytes(d[18:22], "big")))
        else:
            found = [a for a in LOCKERS if a[:5] == d[17:22]]
            an = found[0] if found else None
        if an is None:
            return respond(34)
        iv128 = d[24:32] + bytes(8)
    else:
        blen = int.from_bytes(d[17:19], "big")
        state["coin1"] = (i8(d[19]), int.from_bytes(d[20:24], "big"))
        if enc == 5:
            state["coin2"] = (i8(d[24]), int.from_bytes(d[25:29], "big"))
        an1 = COINS.get(state["coin1"])
        an2 = COINS.get(state["coin2"]) if enc == 5 else b""
        if an1 is None or an2 is None:
            return respond(25)
        key = hashlib.sha256(an1 + an2).digest()
        iv256 = d[24:40]

    if blen > max_body:
        return respond(16)
    # UDP: a body shorter than declared -> 16; bytes after the body are ignored.
    if len(d) < hlen + blen:
        return respond(16)
    body = bytearray(d[hlen : hlen + blen])

    if blen == 0:
        if enc in (4, 5):
            return respond(16)
        payload = b""
    else:
        if blen < 2:
            return respond(16)
        if body[-2:] != TRAILER:
            return respond(33)
        if enc == 0:
            if blen < 18:
                return respond(16)
            state["sig"] = bytes(body[0:16])
            if be(zlib.crc32(bytes(body[0:12])), 4) != body[12:16]:
                return respond(37)
            payload = bytes(body[16 : blen - 2])
        elif enc in (1, 2):
            plain = ctr(an, iv128, bytes(body[: blen - 2]))
            if blen < 18:
                return respond(16)
            state["sig"] = xor(plain[0:16], an)
            if be(zlib.crc32(plain[0:12]), 4) != plain[12:16]:
                return respond(37)
            payload = plain[16:]
        else:
            if blen < 34:
                return respond(16)
            ct = bytes(body[: blen - 34])
            tag = bytes(body[blen - 34 : blen - 2])
            if not hmac.compare_digest(mac(key, ct), tag):
                return respond(204)
            payload = ctr(key, iv256, ct)

    status, output = run_command(d[4], d[5], payload)
    if not output:
        return respond(status)
    if enc == 0:
        return respond(status, output + TRAILER)
    if enc in (1, 2):
        return respond(status, ctr(an, iv128, output) + TRAILER)
    # 48-byte: the IV is response bytes 24..39, known only once the header is built;
    # build it once with a body of the right length, then fill the body in.
    placeholder = respond(status, bytes(len(output) + 32 + 2))
    out_ct = ctr(key, placeholder[24:40], output)
    return placeholder[:48] + out_ct + mac(key, out_ct) + TRAILER


# ------------------------------------------------------------------------------
# Request builders (the client side of PROTOCOL.md).
# ------------------------------------------------------------------------------


def header32(
    enc,
    group,
    command,
    body_len,
    keyfield=None,
    nonce=None,
    routing=1,
    split=0,
    raida=RAIDA_ID,
    shard=0,
    coin_id=COIN_ID,
):
    h = bytearray(32)
    h[0] = routing
    h[1] = split
    h[2] = raida
    h[3] = shard
    h[4] = group
    h[5] = command
    h[6:8] = be(coin_id, 2)
    h[8:16] = rb(8)  # presentation: ignored
    h[16] = enc
    h[17:22] = keyfield if keyfield is not None else rb(5)  # ignored for type 0
    h[22:24] = be(body_len, 2)
    h[24:32] = nonce if nonce is not None else rb(8)  # 30..31 are the echo bytes
    return bytes(h)


def coin_field(den, sn):
    return bytes([den & 0xFF]) + be(sn, 4)


def header48(
    enc,
    group,
    command,
    body_len,
    coin1=(1, 1),
    nonce=None,
    routing=1,
    split=0,
    raida=RAIDA_ID,
    shard=0,
    coin_id=COIN_ID,
    coin2=None,
):
    h = bytearray(48)
    h[0] = routing
    h[1] = split
    h[2] = raida
    h[3] = shard
    h[4] = group
    h[5] = command
    h[6:8] = be(coin_id, 2)
    h[8:16] = rb(8)
    h[16] = enc
    h[17:19] = be(body_len, 2)
    h[19:24] = coin_field(*coin1)
    h[24:48] = nonce if nonce is not None else rb(24)
    if coin2 is not None:
        h[24:29] = coin_field(*coin2)
    return bytes(h)


def challenge(bad_crc=False):
    c12 = rb(12)
    crc = be(zlib.crc32(c12), 4)
    if bad_crc:
        crc = bytes([crc[0], crc[1], crc[2], crc[3] ^ 0x01])
    return c12 + crc


def body0(payload=b"", bad_crc=False):
    return challenge(bad_crc) + payload + TRAILER


def body12(an, nonce8, payload=b"", bad_crc=False):
    return ctr(an, nonce8 + bytes(8), challenge(bad_crc) + payload) + TRAILER


def body45(key, iv16, payload=b""):
    ct = ctr(key, iv16, payload)
    return ct + mac(key, ct) + TRAILER


def key4(coin):
    return hashlib.sha256(COINS[coin]).digest()


def key5(c1, c2):
    return hashlib.sha256(COINS[c1] + COINS[c2]).digest()


# ------------------------------------------------------------------------------
# Cases.
# ------------------------------------------------------------------------------

CASES = []


def case(name, expect, request, note, max_body=None, random22=None, elapsed=None):
    if elapsed is None:
        elapsed = R.getrandbits(32)
    if random22 is None:
        random22 = rb(22)
    response = serve(request, elapsed, random22, max_body or MAX_BODY)
    got = None if response is None else response[2]
    assert got == expect, f"{name}: model says {got}, case expects {expect}"
    assert all(c[0] != name for c in CASES), f"duplicate case {name}"
    CASES.append((name, note, request, elapsed, random22, response, max_body))


def t0(group, command, payload=b"", bad_crc=False, **hdr):
    b = body0(payload, bad_crc)
    return header32(0, group, command, len(b), **hdr) + b


def t1(group, command, coin=(1, 1), payload=b"", bad_crc=False, **hdr):
    nonce = rb(8)
    b = body12(COINS[coin], nonce, payload, bad_crc)
    return header32(1, group, command, len(b), coin_field(*coin), nonce, **hdr) + b


def t2(group, command, payload=b"", bad_crc=False, **hdr):
    nonce = rb(8)
    b = body12(LOCKER, nonce, payload, bad_crc)
    return header32(2, group, command, len(b), LOCKER[:5], nonce, **hdr) + b


def t4(group, command, coin=(1, 1), payload=b"", nonce=None, **hdr):
    nonce = nonce if nonce is not None else rb(24)
    b = body45(key4(coin), nonce[:16], payload)
    return header48(4, group, command, len(b), coin, nonce, **hdr) + b


def t5(group, command, c1=(1, 1), c2=(1, 2), payload=b"", **hdr):
    nonce = bytearray(rb(24))
    nonce[0:5] = coin_field(*c2)
    nonce = bytes(nonce)
    b = body45(key5(c1, c2), nonce[:16], payload)
    return header48(5, group, command, len(b), c1, nonce, **hdr) + b


def build_cases():
    # --- Section 1 / 7: too short to answer (UDP drops silently). ---
    case("drop_empty_datagram", None, b"", "0 bytes: nothing sent")
    case("drop_16_bytes", None, t0(0, 0)[:16], "16 bytes: byte 16 unknown, nothing sent")
    case(
        "drop_16_bytes_bad_routing",
        None,
        bytes([9]) + t0(0, 0)[1:16],
        "16 bytes with a bad routing byte: still nothing (no rule is checked yet)",
    )
    case("drop_type0_31_bytes", None, t0(0, 0)[:31], "type 0, 31 bytes < 32-byte header")
    case("drop_type0_17_bytes", None, t0(0, 0)[:17], "type 0, 17 bytes < 32-byte header")
    case(
        "drop_type4_40_bytes",
        None,
        t4(0, 0)[:40],
        "byte 16 = 4, 40 bytes: shorter than the 48-byte header, nothing sent",
    )
    case("drop_type4_47_bytes", None, t4(0, 0)[:47], "byte 16 = 4, 47 bytes")
    r = bytearray(t0(0, 0)[:40])
    r[16] = 3
    case("drop_type3_40_bytes", None, bytes(r), "byte 16 = 3 needs 48 bytes too")

    # --- Section 2: header rules, each alone. Group 15 (mirror) is used so that the
    # response's group byte 0 (rules not passed) differs from the request's. ---
    case("hdr_routing_0", 255, t0(15, 1, b"x", routing=0), "byte 0 = 0 -> 255, group byte 0")
    case("hdr_routing_2", 255, t0(15, 1, routing=2), "byte 0 = 2 -> 255")
    case("hdr_routing_255", 255, t0(0, 1, routing=255), "byte 0 = 255 -> 255")
    vote = bytearray(t0(15, 1, routing=7))
    vote += rb(497 - len(vote))
    case(
        "hdr_routing_7_integrity_vote_497_bytes",
        255,
        bytes(vote),
        "497 bytes starting with 7 are not special here: 255 like any bad routing byte",
    )
    case("hdr_split_1", 2, t0(15, 1, split=1), "split id 1 -> 2")
    case("hdr_split_255", 2, t0(15, 1, split=255), "split id 255 -> 2")
    case("hdr_raida_8", 3, t0(15, 1, raida=8), "raida id 8 (we are 7) -> 3")
    case("hdr_raida_0", 3, t0(15, 1, raida=0), "raida id 0 -> 3")
    case("hdr_group_16", 5, t0(16, 1), "command group 16 -> 5")
    case("hdr_group_255", 5, t0(255, 0), "command group 255 -> 5")
    case("hdr_shard_4", 4, t0(15, 1, shard=4), "shard 4 -> 4, group byte still 0")
    case("hdr_shard_255", 4, t0(0, 0, shard=255), "shard 255 -> 4")
    case("hdr_shard_3_ok", 250, t0(15, 1, b"shard3", shard=3), "shard 3 is valid")
    case("hdr_command_0_2", 6, t0(0, 2), "(0,2) not registered -> 6")
    case("hdr_command_15_0", 6, t0(15, 0), "(15,0) not registered -> 6, group byte 0")
    case("hdr_command_14_1", 6, t0(14, 1), "(14,1) not registered -> 6")
    case("hdr_coin_id_7", 7, t0(15, 1, coin_id=0x0007), "coin id 0x0007 -> 7, group byte 15")
    case("hdr_coin_id_0106", 7, t0(15, 1, coin_id=0x0106), "coin id high byte wrong -> 7")
    case("hdr_coin_id_0000", 7, t0(0, 1, coin_id=0), "coin id 0 -> 7, group byte 0 (request's)")

    # --- Section 2: two rules failing; the first in the stated order wins. ---
    case("hdr_two_routing_split", 255, t0(15, 1, routing=0, split=1), "255 before 2")
    case("hdr_two_split_raida", 2, t0(15, 1, split=1, raida=9), "2 before 3")
    case("hdr_two_raida_group", 3, t0(20, 1, raida=9), "3 before 5")
    case("hdr_two_group_shard", 5, t0(16, 1, shard=4), "group 5 is checked before shard 4")
    case("hdr_two_shard_command", 4, t0(15, 9, shard=7), "4 before 6")
    case("hdr_two_command_coin", 6, t0(15, 9, coin_id=1), "6 before 7")
    r = header48(3, 15, 1, 0, coin_id=0x0005)
    case("hdr_two_coin_enc_type_3", 7, r, "7 before 27: 48-byte response, byte 16 = 3")
    r = header32(1, 15, 1, 40, coin_field(1, 999), coin_id=0x0005)
    case("hdr_two_coin_unknown_key_t1", 7, r, "7 before 34")
    r = header48(4, 15, 1, 40, (1, 999), coin_id=0x0005)
    case("hdr_two_coin_unknown_key_t4", 7, r, "7 before 25 (48-byte, den/serial 0)")
    r = header32(1, 0, 0, 60000, coin_field(1, 999))
    case(
        "hdr_two_unknown_key_body_too_large_t1",
        34,
        r,
        "key lookup 34 before the body size check",
        max_body=100,
    )
    r = header48(5, 0, 0, 60000, (1, 1), coin2=(1, 999))
    case(
        "hdr_two_unknown_key_body_too_large_t5",
        25,
        r,
        "key lookup 25 before the body size check",
        max_body=100,
    )

    # --- 48-byte requests failing an early rule: 48-byte response, den/serial 0,
    # byte 16 = request's, 24..45 random, 46..47 = request's. ---
    case("t4_hdr_routing_0", 255, t4(15, 1, routing=0), "48-byte 255")
    case("t4_hdr_split_1", 2, t4(15, 1, split=1), "48-byte 2")
    case("t4_hdr_raida_1", 3, t4(15, 1, raida=1), "48-byte 3")
    case("t4_hdr_group_99", 5, t4(99, 1), "48-byte 5")
    case("t4_hdr_shard_9", 4, t4(15, 1, shard=9), "48-byte 4")
    case("t4_hdr_command_3_3", 6, t4(3, 3), "48-byte 6")
    case("t4_hdr_coin_id_ffff", 7, t4(15, 1, coin_id=0xFFFF), "48-byte 7, group byte 15")
    r = bytearray(t4(15, 1))
    r[16] = 6
    r[0] = 2
    case("hdr_routing_enc_type_6", 255, bytes(r), "255 on a type-6 request: 48-byte, byte 16 = 6")

    # --- Section 3: invalid encryption types -> 27. ---
    for t in (3, 6, 255):
        r = bytearray(t4(15, 1, payload=b"abc"))
        r[16] = t
        assert r[17:22] != bytes(5) and r[46:48] != bytes(2)
        case(
            f"enc_type_{t}",
            27,
            bytes(r),
            f"byte 16 = {t} -> 27: 48-byte response, byte 16 = {t}, den/serial 0, 46..47 zero",
        )
    r = header48(3, 0, 0, 0)
    case("enc_type_3_header_only", 27, r, "byte 16 = 3, exactly 48 bytes, no body")

    # --- Key lookup: 34 (types 1, 2) and 25 (types 4, 5). ---
    r = header32(1, 0, 0, 0, coin_field(1, 3))
    case("t1_unknown_coin", 34, r, "type 1 coin (1,3) unknown -> 34")
    r = header32(1, 0, 0, 0, coin_field(2, 1))
    case("t1_unknown_coin_wrong_den", 34, r, "serial 1 exists as den 1, not den 2 -> 34")
    r = header32(1, 0, 0, 0, coin_field(1, 1 + (1 << 26)))
    case("t1_unknown_coin_serial_2pow26_plus_1", 34, r, "no aliasing of serials >= 2^26")
    r = header32(2, 0, 0, 0, LOCKER[:4] + bytes([LOCKER[4] ^ 0xFF]))
    case("t2_unknown_locker_prefix", 34, r, "type 2, no locker with this prefix -> 34")
    r = header32(2, 0, 0, 0, AN1[:5])
    case("t2_prefix_of_coin_an", 34, r, "a coin's AN prefix is not a locker -> 34")
    r = header32(1, 15, 1, 40, coin_field(1, 3))
    case("t1_unknown_coin_short_datagram", 34, r, "unknown key wins over a short datagram")
    r = header48(4, 0, 0, 0, (1, 4))
    case("t4_unknown_coin", 25, r, "type 4 unknown coin -> 25, first coin at 17..21")
    r = header48(4, 15, 1, 80, (-1, 70001))
    case("t4_unknown_coin_short_datagram", 25, r, "unknown key wins over a short datagram")
    r = header48(5, 0, 0, 0, (1, 9), coin2=(1, 2))
    case("t5_unknown_first_coin", 25, r, "type 5, first coin unknown -> 25")
    r = header48(5, 0, 0, 0, (1, 1), coin2=(1, 9))
    case("t5_unknown_second_coin", 25, r, "type 5, second coin unknown -> 25")
    r = header48(5, 15, 1, 80, (1, 1), coin2=(6, 1))
    case("t5_unknown_second_coin_short_datagram", 25, r, "25 wins over a short datagram")

    # --- Body size limit and UDP length. ---
    r = header32(0, 0, 0, 101)
    case("t0_body_too_large", 16, r, "declared 101 > max 100, datagram = header only", max_body=100)
    b = body0(rb(82))
    assert len(b) == 100
    r = header32(0, 15, 1, 100) + b
    case("t0_body_at_max", 250, r, "declared 100 = max 100: served", max_body=100)
    r = header48(4, 0, 0, 101, (1, 2))
    case("t4_body_too_large", 16, r, "48-byte: declared 101 > max 100", max_body=100)
    r = header32(1, 0, 0, 65535, coin_field(1, 1))
    case("t1_body_65535_header_only", 16, r, "declared 65535 <= max, datagram too short -> 16")
    full = t0(15, 1, rb(24))
    case("t0_body_shorter_than_declared", 16, full[:-5], "5 body bytes missing -> 16")
    full = t4(15, 1, payload=rb(10))
    case("t4_body_shorter_than_declared", 16, full[:-1], "1 body byte missing -> 16")
    full = t5(15, 1, payload=rb(10))
    case("t5_body_shorter_than_declared", 16, full[:-20], "20 body bytes missing -> 16")
    case(
        "t0_trailing_garbage",
        250,
        t0(15, 1, b"payload") + rb(9),
        "9 bytes after the body are ignored",
    )
    case(
        "t1_trailing_garbage",
        250,
        t1(15, 1, payload=b"pay") + TRAILER + rb(3),
        "bytes after the body (even 3E 3E) are ignored",
    )
    case(
        "t4_trailing_garbage",
        250,
        t4(15, 1, payload=b"payload") + rb(30),
        "30 bytes after the body are ignored",
    )

    # --- Section 4: body rules, type 0. ---
    r = header32(0, 0, 0, 1) + b"\x3e"
    case("t0_body_len_1", 16, r, "length 1 -> 16")
    b = challenge() + b"\x3e\x00"
    r = header32(0, 0, 0, len(b)) + b
    case("t0_missing_trailer", 33, r, "ends 3E 00 -> 33")
    b = challenge() + b"\x00\x3e"
    r = header32(0, 0, 0, len(b)) + b
    case("t0_missing_trailer_first_half", 33, r, "ends 00 3E -> 33")
    r = header32(0, 0, 0, 2) + TRAILER
    case("t0_body_len_2", 16, r, "trailer only: length < 18 -> 16")
    b = rb(15) + TRAILER
    r = header32(0, 0, 0, 17) + b
    case("t0_body_len_17", 16, r, "length 17 -> 16")
    case("t0_bad_crc", 37, t0(0, 0, bad_crc=True), "CRC wrong -> 37, challenge in signature")
    case(
        "t0_bad_crc_with_payload",
        37,
        t0(15, 1, rb(20), bad_crc=True),
        "37 with a payload: no body",
    )
    case("t0_body_len_0_echo", 250, header32(0, 0, 0, 0), "length 0: echo runs, zero signature")
    case("t0_body_len_0_version", 250, header32(0, 0, 1, 0), "length 0: version runs")
    case("t0_body_len_0_mirror", 250, header32(0, 15, 1, 0), "length 0: empty output, no body")
    case("t0_echo", 250, t0(0, 0), "echo: 250, no body, challenge in signature")
    case("t0_echo_ignores_payload", 250, t0(0, 0, rb(7)), "echo with a payload")
    case("t0_version", 250, t0(0, 1), "version: body = 0.1.0 + 3 spaces + trailer")
    case("t0_mirror_empty", 250, t0(15, 1), "mirror of nothing: no body")
    for n in (1, 15, 16, 17, 40):
        case(f"t0_mirror_{n}", 250, t0(15, 1, rb(n)), f"mirror {n} bytes, clear")
    case(
        "t0_elapsed_zero",
        250,
        t0(0, 1),
        "microseconds field 0",
        elapsed=0,
    )
    case(
        "t0_elapsed_max",
        250,
        t0(0, 1),
        "microseconds field 0xFFFFFFFF",
        elapsed=0xFFFFFFFF,
    )

    # --- Types 1, 2. ---
    nonce = rb(8)
    r = header32(1, 0, 0, 1, coin_field(1, 1), nonce) + b"\x3e"
    case("t1_body_len_1", 16, r, "type 1, length 1 -> 16")
    nonce = rb(8)
    b = ctr(AN1, nonce + bytes(8), challenge() + b"\x3e") + b"\x00"
    r = header32(1, 0, 0, len(b), coin_field(1, 1), nonce) + b
    case("t1_missing_trailer", 33, r, "type 1, no trailer -> 33 (checked before decrypting)")
    nonce = rb(8)
    b = ctr(AN1, nonce + bytes(8), rb(15)) + TRAILER
    r = header32(1, 0, 0, len(b), coin_field(1, 1), nonce) + b
    case("t1_body_len_17", 16, r, "type 1, length 17 -> 16, zero signature")
    r = header32(1, 0, 0, 2, coin_field(1, 1)) + TRAILER
    case("t1_body_len_2", 16, r, "type 1, trailer only -> 16")
    case("t1_bad_crc", 37, t1(0, 0, bad_crc=True), "37: signature = decrypted[0..16] XOR AN")
    case("t2_bad_crc", 37, t2(15, 1, rb(5), bad_crc=True), "locker 37: signature XOR locker AN")
    case("t1_body_len_0_echo", 250, header32(1, 0, 0, 0, coin_field(1, 1)), "length 0, zero sig")
    case(
        "t1_body_len_0_version",
        250,
        header32(1, 0, 1, 0, coin_field(1, 2)),
        "length 0: version body encrypted from the IV",
    )
    case("t2_body_len_0_echo", 250, header32(2, 0, 0, 0, LOCKER[:5]), "locker, length 0")
    case("t1_echo", 250, t1(0, 0), "type 1 echo")
    case("t1_version", 250, t1(0, 1), "type 1 version, body AES-128-CTR from the IV")
    case("t1_echo_coin_den_minus_1", 250, t1(0, 0, (-1, 70000)), "den -1 serial 70000")
    case("t1_version_coin_page_0x100", 250, t1(0, 1, (0, 0x100 * 1024 + 5)), "den 0 page 0x100")
    for n in (1, 15, 16, 17, 40):
        case(
            f"t1_mirror_{n}",
            250,
            t1(15, 1, (1, 2), rb(n)),
            f"mirror {n} bytes: request keystream from block 1, response restarts at the IV",
        )
    case("t1_mirror_40_den_minus_1", 250, t1(15, 1, (-1, 70000), rb(40)), "den -1")
    case("t2_echo", 250, t2(0, 0), "locker echo")
    case("t2_version", 250, t2(0, 1), "locker version")
    case("t2_mirror_17", 250, t2(15, 1, rb(17)), "locker mirror 17 bytes")

    # --- Types 4, 5. ---
    r = header48(4, 0, 0, 1, (1, 1)) + b"\x3e"
    case("t4_body_len_1", 16, r, "type 4, length 1 -> 16")
    r = header48(4, 0, 0, 40, (1, 1)) + rb(38) + b"\x3e\x3f"
    case("t4_missing_trailer", 33, r, "type 4, no trailer -> 33")
    r = header48(4, 0, 0, 33, (1, 1)) + rb(31) + TRAILER
    case("t4_body_len_33", 16, r, "type 4, length 33 < 34 -> 16")
    r = header48(4, 0, 0, 2, (1, 1)) + TRAILER
    case("t4_body_len_2", 16, r, "type 4, trailer only -> 16")
    case("t4_body_len_0", 16, header48(4, 0, 0, 0, (1, 1)), "type 4, length 0 -> 16")
    r = header48(5, 0, 0, 0, (1, 1), coin2=(1, 2))
    case("t5_body_len_0", 16, r, "type 5, length 0 -> 16")
    good = t4(15, 1, payload=rb(20))
    for label, index in (("first", 48 + 20), ("last", len(good) - 3)):
        r = bytearray(good)
        r[index] ^= 0x01
        case(f"t4_bad_hmac_{label}_byte", 204, bytes(r), f"tag {label} byte flipped -> 204")
    r = bytearray(good)
    r[48] ^= 0x80
    case("t4_ciphertext_tampered", 204, bytes(r), "ciphertext byte flipped -> 204")
    nonce = rb(24)
    b = body45(hashlib.sha256(AN2).digest(), nonce[:16], rb(8))
    r = header48(4, 15, 1, len(b), (1, 1), nonce) + b
    case("t4_wrong_key", 204, r, "HMAC under another coin's key -> 204")
    nonce = bytearray(rb(24))
    nonce[0:5] = coin_field(1, 2)
    b = body45(key4((1, 1)), bytes(nonce[:16]), rb(8))
    r = header48(5, 15, 1, len(b), (1, 1), bytes(nonce)) + b
    case("t5_bad_hmac_single_key", 204, r, "type 5 authenticated with SHA-256(AN1) -> 204")
    r = bytearray(t5(0, 0))
    r[-3] ^= 0xFF
    case("t5_bad_hmac_last_byte", 204, bytes(r), "type 5 tag last byte flipped -> 204")

    case("t4_echo", 250, t4(0, 0), "type 4 echo, empty ciphertext (length 34)")
    case("t4_echo_with_payload", 250, t4(0, 0, payload=rb(9)), "type 4 echo, payload ignored")
    case("t4_version", 250, t4(0, 1), "type 4 version: body AES-256-CTR, IV = response 24..39")
    case("t4_version_coin_den_minus_1", 250, t4(0, 1, (-1, 70000)), "type 4, den -1")
    case("t4_mirror_empty", 250, t4(15, 1), "type 4 mirror of nothing: no body")
    for n in (1, 15, 16, 17, 40):
        case(f"t4_mirror_{n}", 250, t4(15, 1, (1, 2), rb(n)), f"type 4 mirror {n} bytes")
    # Counter carry across the 64-bit halves: request IV and response IV both end in
    # ff ff ff ff ff ff ff fe, so a 40-byte payload's third block carries into byte 7
    # of the IV (bytes 24..39 of the request, 24..39 of the response).
    nonce = bytes(rb(8) + b"\xff" * 7 + b"\xfe" + rb(8))
    random22 = rb(8) + b"\xff" * 7 + b"\xfe" + rb(6)
    case(
        "t4_mirror_40_counter_carry",
        250,
        t4(15, 1, (0, 0x100 * 1024 + 5), rb(40), nonce),
        "128-bit counter carries from the low 64 bits, request and response",
        random22=random22,
    )
    case("t5_echo", 250, t5(0, 0), "type 5 echo")
    case("t5_version", 250, t5(0, 1), "type 5 version: second coin at 24..28")
    case(
        "t5_version_coins_3_4",
        250,
        t5(0, 1, (-1, 70000), (0, 0x100 * 1024 + 5)),
        "type 5 with coins 3 and 4",
    )
    case("t5_version_same_coin_twice", 250, t5(0, 1, (1, 1), (1, 1)), "key SHA-256(AN1 || AN1)")
    for n in (1, 16, 17, 40):
        case(f"t5_mirror_{n}", 250, t5(15, 1, (1, 2), (1, 1), rb(n)), f"type 5 mirror {n} bytes")


def main():
    build_cases()
    out = sys.stdout
    out.write(
        "# RAIDA wire vectors: UDP request -> expected response, modelled on\n"
        "# shared/PROTOCOL.md by scripts/vectors/gen_wire_vectors.py, independently of\n"
        "# the Rust code. Regenerate from the repository root with\n"
        "#   python3 scripts/vectors/gen_wire_vectors.py > core/tests/vectors/wire_pairs.txt\n"
        "# Do not edit by hand.\n"
        "#\n"
        "# Header: server settings and key store. Then one block per case, blocks\n"
        "# separated by a blank line: case NAME, note TEXT, request HEX, elapsed MICROS,\n"
        "# random HEX (22 bytes), optional max_body_size N (overrides the header's),\n"
        "# response HEX | none. Lines starting with # are comments.\n"
        "\n"
    )
    out.write(f"raida_id {RAIDA_ID}\n")
    out.write(f"coin_id {COIN_ID}\n")
    out.write(f"max_body_size {MAX_BODY}\n")
    for (den, sn), an in COINS.items():
        out.write(f"coin {den} {sn} {an.hex()}\n")
    for an in LOCKERS:
        out.write(f"locker {an.hex()}\n")
    for name, note, request, elapsed, random22, response, max_body in CASES:
        out.write("\n")
        out.write(f"case {name}\n")
        out.write(f"note {note}\n")
        out.write(f"request {request.hex()}\n")
        out.write(f"elapsed {elapsed}\n")
        out.write(f"random {random22.hex()}\n")
        if max_body is not None:
            out.write(f"max_body_size {max_body}\n")
        out.write(f"response {'none' if response is None else response.hex()}\n")
    sys.stderr.write(f"{len(CASES)} cases\n")


if __name__ == "__main__":
    main()
