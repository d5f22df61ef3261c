//! The crypto module against published test vectors (unit tests: the module is
//! private to core).
//!
//! Every expected value below was typed in from its published source (cited at each
//! test), never produced by the code under test. Each one was also cross-checked once
//! against Python's `cryptography` 48.0.0 (AES-CTR), `hmac` + `hashlib` (HMAC-SHA256,
//! SHA-256) and `zlib` (CRC-32) before it was committed; every value matched.

use super::{aes128_ctr, aes256_ctr, crc32, hmac_sha256, hmac_sha256_matches, sha256};

/// Decodes a hex string (whitespace allowed between digits).
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(text, 16).expect("valid hex digit pair")
        })
        .collect()
}

fn hex16(s: &str) -> [u8; 16] {
    hex(s).try_into().expect("16 bytes")
}

fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().expect("32 bytes")
}

// ---------------------------------------------------------------------------------
// NIST SP 800-38A (2001), Appendix F.5: CTR example vectors.
// The initial counter block f0f1...feff makes the second block's counter carry out of
// the low byte (f0..fd ff -> f0..fe 00), so these vectors check the whole 128-bit
// big-endian counter, not only a 32- or 64-bit low part.
// ---------------------------------------------------------------------------------

/// SP 800-38A F.5: the plaintext shared by every CTR example (4 blocks).
const SP800_38A_PLAINTEXT: &str = "6bc1bee22e409f96e93d7e117393172a
     ae2d8a571e03ac9c9eb76fac45af8e51
     30c81c46a35ce411e5fbc1191a0a52ef
     f69f2445df4f9b17ad2b417be66c3710";

/// SP 800-38A F.5: the initial counter block of every CTR example.
const SP800_38A_INIT_COUNTER: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/// SP 800-38A F.5.1 CTR-AES128.Encrypt: key.
const F51_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
/// SP 800-38A F.5.1 CTR-AES128.Encrypt: ciphertext, blocks #1..#4.
const F51_CIPHERTEXT: &str = "874d6191b620e3261bef6864990db6ce
     9806f66b7970fdff8617187bb9fffdff
     5ae4df3edbd5d35e5b4f09020db03eab
     1e031dda2fbe03d1792170a0f3009cee";

/// SP 800-38A F.5.5 CTR-AES256.Encrypt: key.
const F55_KEY: &str = "603deb1015ca71be2b73aef0857d7781
     1f352c073b6108d72d9810a30914dff4";
/// SP 800-38A F.5.5 CTR-AES256.Encrypt: ciphertext, blocks #1..#4.
const F55_CIPHERTEXT: &str = "601ec313775789a5b7a7f504bbf3d228
     f443e3ca4d62b59aca84e990cacaf5c5
     2b0930daa23de94ce87017ba2d84988d
     dfc9c58db67aada613c2dd08457941a6";

#[test]
fn sp800_38a_f5_1_ctr_aes128_encrypt() {
    let key = hex16(F51_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let mut buf = hex(SP800_38A_PLAINTEXT);
    aes128_ctr(&key, &iv, &mut buf);
    assert_eq!(buf, hex(F51_CIPHERTEXT));
}

#[test]
fn sp800_38a_f5_2_ctr_aes128_decrypt() {
    // F.5.2 is F.5.1 run backwards: same key and counter, ciphertext in, plaintext out.
    let key = hex16(F51_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let mut buf = hex(F51_CIPHERTEXT);
    aes128_ctr(&key, &iv, &mut buf);
    assert_eq!(buf, hex(SP800_38A_PLAINTEXT));
}

#[test]
fn sp800_38a_f5_1_ctr_aes128_partial_blocks() {
    // CTR is a stream: every prefix of the plaintext encrypts to the same prefix of the
    // published ciphertext (checks the tail handling of a partial last block).
    let key = hex16(F51_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let plain = hex(SP800_38A_PLAINTEXT);
    let cipher = hex(F51_CIPHERTEXT);
    for len in [0, 1, 15, 16, 17, 31, 33, 38, 63] {
        let mut buf = plain[..len].to_vec();
        aes128_ctr(&key, &iv, &mut buf);
        assert_eq!(buf, cipher[..len], "prefix of {len} bytes");
    }
}

#[test]
fn sp800_38a_f5_5_ctr_aes256_encrypt() {
    let key = hex32(F55_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let mut buf = hex(SP800_38A_PLAINTEXT);
    aes256_ctr(&key, &iv, &mut buf);
    assert_eq!(buf, hex(F55_CIPHERTEXT));
}

#[test]
fn sp800_38a_f5_6_ctr_aes256_decrypt() {
    let key = hex32(F55_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let mut buf = hex(F55_CIPHERTEXT);
    aes256_ctr(&key, &iv, &mut buf);
    assert_eq!(buf, hex(SP800_38A_PLAINTEXT));
}

#[test]
fn sp800_38a_f5_5_ctr_aes256_partial_blocks() {
    let key = hex32(F55_KEY);
    let iv = hex16(SP800_38A_INIT_COUNTER);
    let plain = hex(SP800_38A_PLAINTEXT);
    let cipher = hex(F55_CIPHERTEXT);
    for len in [0, 1, 15, 16, 17, 31, 33, 38, 63] {
        let mut buf = plain[..len].to_vec();
        aes256_ctr(&key, &iv, &mut buf);
        assert_eq!(buf, cipher[..len], "prefix of {len} bytes");
    }
}

// ---------------------------------------------------------------------------------
// RFC 4231 (December 2005), section 4: HMAC-SHA-256 test vectors.
// ---------------------------------------------------------------------------------

/// One RFC 4231 test case: (number, key, data, HMAC-SHA-256).
type HmacCase = (u32, Vec<u8>, Vec<u8>, Vec<u8>);

/// RFC 4231 section 4.2..4.8: (test case, key, data, HMAC-SHA-256).
fn rfc4231_cases() -> Vec<HmacCase> {
    vec![
        // 4.2 Test Case 1
        (
            1,
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        ),
        // 4.3 Test Case 2: a key shorter than the length of the HMAC output.
        (
            2,
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ),
        // 4.4 Test Case 3: combined length of key and data larger than 64 bytes.
        (
            3,
            vec![0xaa; 20],
            vec![0xdd; 50],
            hex("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ),
        // 4.5 Test Case 4: key 0x0102...19 (25 bytes).
        (
            4,
            hex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
            vec![0xcd; 50],
            hex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ),
        // 4.7 Test Case 6: a key larger than the 64-byte block size.
        (
            6,
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ),
        // 4.8 Test Case 7: key and data both larger than the block size.
        (
            7,
            vec![0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than \
block-size data. The key needs to be hashed before being used by the HMAC algorithm."
                .to_vec(),
            hex("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ),
    ]
}

#[test]
fn rfc4231_hmac_sha256() {
    for (case, key, data, expected) in rfc4231_cases() {
        assert_eq!(
            hmac_sha256(&key, &data).to_vec(),
            expected,
            "RFC 4231 test case {case}"
        );
        assert!(
            hmac_sha256_matches(&key, &data, &expected),
            "RFC 4231 test case {case}: the published tag must be accepted"
        );
    }
}

#[test]
fn rfc4231_case_7_data_is_the_published_text() {
    // Guard against a typo in the long message of test case 7: RFC 4231 gives it as
    // 152 bytes of ASCII.
    let (_, _, data, _) = rfc4231_cases().pop().expect("case 7 is last");
    assert_eq!(data.len(), 152);
}

#[test]
fn rfc4231_case_5_truncated_to_128_bits() {
    // 4.6 Test Case 5: the RFC publishes only the first 128 bits of the output.
    let key = [0x0c; 20];
    let data = b"Test With Truncation";
    let tag = hmac_sha256(&key, data);
    assert_eq!(tag[..16], hex("a3b6167473100ee06e0c796c2955552b"));
    // A truncated tag is not a tag: the protocol always carries all 32 bytes.
    assert!(!hmac_sha256_matches(&key, data, &tag[..16]));
}

#[test]
fn hmac_tag_differing_in_one_byte_is_rejected() {
    for (case, key, data, expected) in rfc4231_cases() {
        for (what, index) in [("first", 0), ("middle", 16), ("last", expected.len() - 1)] {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = expected.clone();
                bad[index] ^= flip;
                assert!(
                    !hmac_sha256_matches(&key, &data, &bad),
                    "RFC 4231 case {case}: tag with {what} byte ^ {flip:#04x} accepted"
                );
            }
        }
    }
}

#[test]
fn hmac_tag_of_wrong_length_is_rejected() {
    for (case, key, data, expected) in rfc4231_cases() {
        // Too short: every proper prefix, including the empty tag.
        for len in [0, 1, 16, 31] {
            assert!(
                !hmac_sha256_matches(&key, &data, &expected[..len]),
                "RFC 4231 case {case}: {len}-byte prefix accepted"
            );
        }
        // Too long: the right tag followed by one or more extra bytes.
        let mut longer = expected.clone();
        longer.push(0);
        assert!(
            !hmac_sha256_matches(&key, &data, &longer),
            "RFC 4231 case {case}: 33-byte tag accepted"
        );
        let mut doubled = expected.clone();
        doubled.extend_from_slice(&expected);
        assert!(
            !hmac_sha256_matches(&key, &data, &doubled),
            "RFC 4231 case {case}: 64-byte tag accepted"
        );
    }
}

#[test]
fn hmac_tag_for_other_data_or_key_is_rejected() {
    let cases = rfc4231_cases();
    // Case 6 and 7 share a key; their tags must not be interchangeable.
    let (_, key6, data6, tag6) = &cases[4];
    let (_, key7, data7, tag7) = &cases[5];
    assert_eq!(key6, key7);
    assert!(!hmac_sha256_matches(key6, data6, tag7));
    assert!(!hmac_sha256_matches(key7, data7, tag6));
    // Case 1's tag under case 3's key.
    let (_, _, data1, tag1) = &cases[0];
    let (_, key3, _, _) = &cases[2];
    assert!(!hmac_sha256_matches(key3, data1, tag1));
}

// ---------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3 / zlib): the catalogue "check" value, CRC of the nine ASCII
// bytes "123456789" (Greg Cook's CRC RevEng catalogue, CRC-32/ISO-HDLC: check =
// 0xcbf43926; also the value of zlib.crc32(b"123456789")).
// ---------------------------------------------------------------------------------

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn crc32_of_nothing_is_zero() {
    // CRC-32/ISO-HDLC: init 0xffffffff, xorout 0xffffffff, so the empty input gives 0.
    assert_eq!(crc32(b""), 0);
}

// ---------------------------------------------------------------------------------
// SHA-256: FIPS 180-2, Appendix B.1 (one-block message "abc").
// ---------------------------------------------------------------------------------

const FIPS180_2_SHA256_ABC: &str =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn fips180_2_sha256_abc() {
    assert_eq!(sha256(&[b"abc"]).to_vec(), hex(FIPS180_2_SHA256_ABC));
}

#[test]
fn sha256_hashes_the_concatenation_of_its_parts() {
    // The protocol's type 5 key is SHA-256(AN1 || AN2), passed as two parts.
    let expected = hex(FIPS180_2_SHA256_ABC);
    assert_eq!(sha256(&[b"a", b"bc"]).to_vec(), expected);
    assert_eq!(sha256(&[b"ab", b"", b"c"]).to_vec(), expected);
    assert_eq!(sha256(&[b"", b"a", b"b", b"c", b""]).to_vec(), expected);
}
