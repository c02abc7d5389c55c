//! Stored password hashes: compute `mysql_native_password`'s, and check a password against
//! what the facts query reports, without the server ever echoing a usable hash.
//!
//! The facts query never prints `authentication_string` itself. It prints an *auth check*:
//! - `mysql_native_password`: `SHA2(authentication_string, 256)`, compared with the SHA-256
//!   of [`mysql_native_password_hash`] of the wanted password;
//! - `caching_sha2_password`: `HEX` of the 27-byte header (`$A$005$` + 20-byte salt), `:`,
//!   and `SHA2` of the 43-character digest. The digest is recomputed here (SHA-256 crypt with
//!   that salt and round count) and compared the same way;
//! - any other plugin: empty, and the password cannot be checked.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Whether an account's stored hash matches a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PasswordCheck {
    Matches,
    Differs,
    /// The plugin or the stored value does not allow a comparison.
    Unknown {
        reason: String,
    },
}

/// The `mysql_native_password` hash of `password`: `*` and the upper-case hex of
/// SHA1(SHA1(password)); empty for an empty password, as the server stores it.
pub fn mysql_native_password_hash(password: &str) -> String {
    if password.is_empty() {
        return String::new();
    }
    let stage2 = sha1(&sha1(password.as_bytes()));
    format!("*{}", hex::encode_upper(stage2))
}

/// Checks `password` against an account's plugin and auth check (see the module docs).
pub(crate) fn check_password(plugin: &str, auth_check: &str, password: &Secret) -> PasswordCheck {
    let password = password.expose();
    match plugin {
        "mysql_native_password" => {
            if auth_check.is_empty() {
                return unknown("the server reported no hash");
            }
            let want = sha256_hex(mysql_native_password_hash(password).as_bytes());
            verdict(want.eq_ignore_ascii_case(auth_check))
        }
        "caching_sha2_password" => check_caching_sha2(auth_check, password),
        "" => unknown("the account has no authentication plugin"),
        other => unknown(&format!("passwords stored with {other} cannot be compared")),
    }
}

fn check_caching_sha2(auth_check: &str, password: &str) -> PasswordCheck {
    let Some((header_hex, digest_sha)) = auth_check.split_once(':') else {
        return unknown("the server reported no hash");
    };
    if header_hex.is_empty() {
        // An empty authentication_string: the account has no password.
        return verdict(password.is_empty());
    }
    let Ok(header) = hex::decode(header_hex) else {
        return unknown("the stored hash is not in the expected form");
    };
    // "$A$" + three hex digits (rounds / 1000) + "$" + 20-byte salt.
    if header.len() != 27 || &header[..3] != b"$A$" || header[6] != b'$' {
        return unknown("the stored hash is not in the expected form");
    }
    let Some(rounds) = std::str::from_utf8(&header[3..6])
        .ok()
        .and_then(|r| u32::from_str_radix(r, 16).ok())
        .filter(|r| (1..=0xfff).contains(r))
    else {
        return unknown("the stored hash has an unreadable round count");
    };
    if password.is_empty() {
        return PasswordCheck::Differs;
    }
    let digest = sha256_crypt(password.as_bytes(), &header[7..], rounds * 1000);
    verdict(sha256_hex(digest.as_bytes()).eq_ignore_ascii_case(digest_sha))
}

fn verdict(matches: bool) -> PasswordCheck {
    if matches {
        PasswordCheck::Matches
    } else {
        PasswordCheck::Differs
    }
}

fn unknown(reason: &str) -> PasswordCheck {
    PasswordCheck::Unknown {
        reason: reason.to_string(),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA-256 crypt (Drepper's algorithm, as glibc's `$5$` and MySQL's `caching_sha2_password`
/// use it) of `key` with `salt` and `rounds`: the 43-character digest only.
/// MySQL uses 20-byte salts where glibc stops at 16; the algorithm is otherwise the same.
pub(crate) fn sha256_crypt(key: &[u8], salt: &[u8], rounds: u32) -> String {
    let digest_b = {
        let mut h = Sha256::new();
        h.update(key);
        h.update(salt);
        h.update(key);
        h.finalize()
    };
    let mut a = Sha256::new();
    a.update(key);
    a.update(salt);
    let mut n = key.len();
    while n > 32 {
        a.update(digest_b);
        n -= 32;
    }
    a.update(&digest_b[..n]);
    let mut n = key.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(digest_b);
        } else {
            a.update(key);
        }
        n >>= 1;
    }
    let mut c: [u8; 32] = a.finalize().into();

    let p = {
        let mut h = Sha256::new();
        for _ in 0..key.len() {
            h.update(key);
        }
        repeat_to(&h.finalize(), key.len())
    };
    let s = {
        let mut h = Sha256::new();
        for _ in 0..16 + usize::from(c[0]) {
            h.update(salt);
        }
        repeat_to(&h.finalize(), salt.len())
    };

    for i in 0..rounds {
        let mut h = Sha256::new();
        if i & 1 == 1 {
            h.update(&p);
        } else {
            h.update(c);
        }
        if i % 3 != 0 {
            h.update(&s);
        }
        if i % 7 != 0 {
            h.update(&p);
        }
        if i & 1 == 1 {
            h.update(c);
        } else {
            h.update(&p);
        }
        c = h.finalize().into();
    }

    const B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(43);
    let mut push = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
        for _ in 0..n {
            out.push(B64[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for k in 0..10 {
        // (0,10,20), (21,1,11), (12,22,2), (3,13,23), ...: each triple rotates by one.
        let (x, y, z) = match k % 3 {
            0 => (k, k + 10, k + 20),
            1 => (k + 20, k, k + 10),
            _ => (k + 10, k + 20, k),
        };
        push(c[x], c[y], c[z], 4);
    }
    push(0, c[31], c[30], 3);
    out
}

fn repeat_to(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

/// SHA-1 (FIPS 180-4). Only for `mysql_native_password`, which is defined in terms of it;
/// the crate has no SHA-1 dependency.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_fips_vectors() {
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex::encode(sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn native_hash_matches_the_server() {
        // Both stored by MariaDB 10.11.19 for CREATE USER ... IDENTIFIED BY (captured).
        assert_eq!(
            mysql_native_password_hash("pa'ss"),
            "*B11BE2E60507F83203247253AC80B1EBDABF3E8F"
        );
        // The value every MySQL/MariaDB manual shows for PASSWORD('password').
        assert_eq!(
            mysql_native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
        assert_eq!(mysql_native_password_hash(""), "");
    }

    #[test]
    fn sha256_crypt_matches_glibc() {
        // glibc crypt("Hello world!", "$5$saltstring") (Drepper's reference vector).
        assert_eq!(
            sha256_crypt(b"Hello world!", b"saltstring", 5000),
            "5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        // glibc crypt("Hello world!", "$5$rounds=10000$saltstringsaltstring") (salt cut at 16).
        assert_eq!(
            sha256_crypt(b"Hello world!", b"saltstringsaltst", 10000),
            "3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
        );
        // Python's crypt.crypt("a" * 70, "$5$abcdefghijklmnop"): a key longer than a digest.
        assert_eq!(
            sha256_crypt(&[b'a'; 70], b"abcdefghijklmnop", 5000),
            "0f5vhQ7E1u36zdTHk8pC3e/aJF5x4mwH1npP2gMy5L7"
        );
    }

    /// `caching_sha2_password` strings from other projects' test suites, with their passwords.
    fn auth_check_of(stored: &[u8]) -> String {
        format!(
            "{}:{}",
            hex::encode_upper(&stored[..27]),
            sha256_hex(&stored[27..])
        )
    }

    #[test]
    fn caching_sha2_hashes_verify() {
        // TiDB's parser/auth test vector for "foobar".
        let foobar = hex::decode(
            "24412430303524031A69251C34295C4B35167C7F1E5A7B63091349503974624D34504B5A42467935\
             4856336868686F52485A736E4A733368786E427575516C73446469496537",
        )
        .unwrap();
        let check = auth_check_of(&foobar);
        assert_eq!(
            check_password("caching_sha2_password", &check, &Secret::new("foobar")),
            PasswordCheck::Matches
        );
        assert_eq!(
            check_password("caching_sha2_password", &check, &Secret::new("foobaz")),
            PasswordCheck::Differs
        );
        // A MySQL 8 hash for "123456" (salt with control bytes, as real salts have).
        let other = hex::decode(
            "244124303035245e3e122f765160382d0b1e4d416f3f6752557c3c4d726e5a68756f4a547547682e\
             536c504e6e76484a7854646b5452486d636e45464d61377a634147714144",
        )
        .unwrap();
        assert_eq!(
            check_password(
                "caching_sha2_password",
                &auth_check_of(&other),
                &Secret::new("123456")
            ),
            PasswordCheck::Matches
        );
    }

    #[test]
    fn native_checks_compare_digests_of_hashes() {
        let stored = "*B11BE2E60507F83203247253AC80B1EBDABF3E8F";
        let check = sha256_hex(stored.as_bytes());
        assert_eq!(
            check_password("mysql_native_password", &check, &Secret::new("pa'ss")),
            PasswordCheck::Matches
        );
        assert_eq!(
            check_password(
                "mysql_native_password",
                &check.to_uppercase(),
                &Secret::new("pass")
            ),
            PasswordCheck::Differs
        );
    }

    #[test]
    fn other_plugins_and_odd_values_are_unknown() {
        let pw = Secret::new("x");
        assert!(matches!(
            check_password("ed25519", "", &pw),
            PasswordCheck::Unknown { reason } if reason == "passwords stored with ed25519 cannot be compared"
        ));
        assert!(matches!(
            check_password("mysql_native_password", "", &pw),
            PasswordCheck::Unknown { .. }
        ));
        assert!(matches!(
            check_password("caching_sha2_password", "zz", &pw),
            PasswordCheck::Unknown { .. }
        ));
        assert!(matches!(
            check_password("caching_sha2_password", "0102:ab", &pw),
            PasswordCheck::Unknown { .. }
        ));
        // An account without a password.
        let empty = format!(":{}", sha256_hex(b""));
        assert_eq!(
            check_password("caching_sha2_password", &empty, &Secret::new("")),
            PasswordCheck::Matches
        );
        assert_eq!(
            check_password("caching_sha2_password", &empty, &pw),
            PasswordCheck::Differs
        );
    }
}
