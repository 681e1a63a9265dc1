//! The key store file format.
//!
//! ```text
//! offset size  field
//!      0    8  magic "KBDEVKS\0"
//!      8    2  format version (1), big-endian
//!     10    1  KDF id (1 = Argon2id v19)
//!     11    4  Argon2 memory cost, KiB
//!     15    4  Argon2 time cost (passes)
//!     19    4  Argon2 parallelism
//!     23   16  salt (random, set at creation)
//!     39   32  PIN check: HMAC-SHA256(key, "keybridge key store PIN check v1" ‖ bytes 0..39)
//!     71   12  AES-GCM nonce (random, new for every write)
//!     83    8  ciphertext length (including the 16-byte tag)
//!     91   32  header digest: SHA-256(bytes 0..91)
//!    123    …  AES-256-GCM(key, nonce, contents JSON, aad = bytes 0..123)
//! ```
//!
//! The checks on opening run in an order that tells damage from a wrong PIN: magic, length and
//! the (unkeyed) header digest catch a damaged header; the PIN check value, keyed by the
//! Argon2id output, then tells a wrong PIN; once the key is known to be right, a failing GCM tag
//! can only mean damaged contents.

use aes_gcm::aead::{Aead as _, Payload};
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use hmac::{Hmac, Mac as _};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// First bytes of every store file.
pub(crate) const MAGIC: &[u8; 8] = b"KBDEVKS\0";
/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
const KDF_ARGON2ID: u8 = 1;
/// Size of the fixed header.
pub(crate) const HEADER_LEN: usize = 123;
const PIN_CHECK_LABEL: &[u8] = b"keybridge key store PIN check v1";
const TAG_LEN: u64 = 16;
/// Upper bounds on header KDF parameters, so that a crafted header cannot make opening take
/// gigabytes or hours.
/// 256 MiB and 16 passes: four and five times what [`KdfParams::default`] writes.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_TIME_COST: u32 = 16;
const MAX_PARALLELISM: u32 = 16;

/// Argon2id parameters, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub time_cost: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option, single lane).
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            time_cost: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only: they make a PIN easy to brute-force. They exist only in
    /// this crate's own tests and with the `insecure-test-kdf` feature, which no shipped build
    /// enables.
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: 64,
            time_cost: 1,
            parallelism: 1,
        }
    }
}

/// Why a file could not be opened, before the caller adds the path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    Corrupt(String),
    UnsupportedVersion(u16),
    WrongPin,
    Kdf(String),
}

/// The parsed fixed header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) kdf: KdfParams,
    pub(crate) salt: [u8; 16],
}

/// The derived store key.
pub(crate) struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    pub(crate) fn derive(pin: &str, header: &Header) -> Result<Self, OpenFailure> {
        let params = argon2::Params::new(
            header.kdf.memory_kib,
            header.kdf.time_cost,
            header.kdf.parallelism,
            Some(32),
        )
        .map_err(|error| OpenFailure::Kdf(error.to_string()))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let mut key = Zeroizing::new([0u8; 32]);
        // Argon2's working memory ends holding values the key is hashed from (with one lane
        // the last block is that value), so it is our own buffer, wiped when dropped, rather
        // than one the library frees as it is.
        let mut blocks = Zeroizing::new(vec![argon2::Block::default(); params.block_count()]);
        argon
            .hash_password_into_with_memory(
                pin.as_bytes(),
                &header.salt,
                key.as_mut(),
                blocks.as_mut_slice(),
            )
            .map_err(|error| OpenFailure::Kdf(error.to_string()))?;
        Ok(Self(key))
    }

    fn pin_check(&self, prefix: &[u8]) -> Result<[u8; 32], OpenFailure> {
        // HMAC takes keys of any length; the error branch exists only in the type.
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .map_err(|error| OpenFailure::Kdf(error.to_string()))?;
        mac.update(PIN_CHECK_LABEL);
        mac.update(prefix);
        Ok(mac.finalize().into_bytes().into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }
}

/// A fresh header for a new store.
pub(crate) fn new_header(kdf: KdfParams) -> Header {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    Header { kdf, salt }
}

/// Checks that the KDF parameters are ones this build accepts.
pub(crate) fn check_kdf(kdf: &KdfParams) -> Result<(), String> {
    if kdf.memory_kib > MAX_MEMORY_KIB
        || kdf.time_cost == 0
        || kdf.time_cost > MAX_TIME_COST
        || kdf.parallelism == 0
        || kdf.parallelism > MAX_PARALLELISM
        || kdf.memory_kib < 8 * kdf.parallelism
    {
        return Err(format!(
            "Argon2 parameters out of range (memory {} KiB, {} passes, {} lanes; this build \
             accepts at most {MAX_MEMORY_KIB} KiB, {MAX_TIME_COST} passes, {MAX_PARALLELISM} lanes)",
            kdf.memory_kib, kdf.time_cost, kdf.parallelism
        ));
    }
    Ok(())
}

/// Encrypts `contents` into a complete file image.
pub(crate) fn seal(header: &Header, key: &StoreKey, contents: &[u8]) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext_len =
        u64::try_from(contents.len()).map_err(|_| "contents too large".to_owned())? + TAG_LEN;

    let mut image = Vec::with_capacity(HEADER_LEN + contents.len() + 16);
    image.extend_from_slice(MAGIC);
    image.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    image.push(KDF_ARGON2ID);
    image.extend_from_slice(&header.kdf.memory_kib.to_be_bytes());
    image.extend_from_slice(&header.kdf.time_cost.to_be_bytes());
    image.extend_from_slice(&header.kdf.parallelism.to_be_bytes());
    image.extend_from_slice(&header.salt);
    let check = key
        .pin_check(&image)
        .map_err(|_| "HMAC failed".to_owned())?;
    image.extend_from_slice(&check);
    image.extend_from_slice(&nonce);
    image.extend_from_slice(&ciphertext_len.to_be_bytes());
    let digest: [u8; 32] = Sha256::digest(&image).into();
    image.extend_from_slice(&digest);
    debug_assert_eq!(image.len(), HEADER_LEN);

    let ciphertext = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: contents,
                aad: &image,
            },
        )
        .map_err(|_| "AES-GCM encryption failed".to_owned())?;
    image.extend_from_slice(&ciphertext);
    Ok(image)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(buf)
}

/// Checks the structure of a file image (everything that needs no key) and reads its header.
pub(crate) fn parse_header(image: &[u8]) -> Result<Header, OpenFailure> {
    if image.len() < MAGIC.len() || &image[..MAGIC.len()] != MAGIC {
        return Err(OpenFailure::Corrupt(
            "bad magic: this is not a keybridge key store file".to_owned(),
        ));
    }
    if image.len() < HEADER_LEN {
        return Err(OpenFailure::Corrupt(format!(
            "truncated: the file has {} bytes, the header alone needs {HEADER_LEN}",
            image.len()
        )));
    }
    let digest: [u8; 32] = Sha256::digest(&image[..91]).into();
    if digest[..] != image[91..HEADER_LEN] {
        return Err(OpenFailure::Corrupt(
            "the header checksum does not match".to_owned(),
        ));
    }
    let version = u16::from_be_bytes([image[8], image[9]]);
    if version != FORMAT_VERSION {
        return Err(OpenFailure::UnsupportedVersion(version));
    }
    if image[10] != KDF_ARGON2ID {
        return Err(OpenFailure::Corrupt(format!(
            "unknown key derivation id {}",
            image[10]
        )));
    }
    let kdf = KdfParams {
        memory_kib: be_u32(image, 11),
        time_cost: be_u32(image, 15),
        parallelism: be_u32(image, 19),
    };
    check_kdf(&kdf).map_err(OpenFailure::Corrupt)?;
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&image[23..39]);
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&image[83..91]);
    let ciphertext_len = u64::from_be_bytes(len_bytes);
    let body_len = u64::try_from(image.len() - HEADER_LEN).unwrap_or(u64::MAX);
    if body_len < ciphertext_len {
        return Err(OpenFailure::Corrupt(format!(
            "truncated: the encrypted contents have {body_len} of {ciphertext_len} bytes"
        )));
    }
    if body_len > ciphertext_len {
        return Err(OpenFailure::Corrupt(format!(
            "{} unexpected bytes after the encrypted contents",
            body_len - ciphertext_len
        )));
    }
    if ciphertext_len < TAG_LEN {
        return Err(OpenFailure::Corrupt(
            "the encrypted contents are too short".to_owned(),
        ));
    }
    Ok(Header { kdf, salt })
}

/// Checks the PIN and decrypts. `image` must have passed [`parse_header`].
pub(crate) fn open(image: &[u8], key: &StoreKey) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    let expected = key.pin_check(&image[..39])?;
    if !bool::from(expected.ct_eq(&image[39..71])) {
        return Err(OpenFailure::WrongPin);
    }
    let nonce = Nonce::from_slice(&image[71..83]);
    key.cipher()
        .decrypt(
            nonce,
            Payload {
                msg: &image[HEADER_LEN..],
                aad: &image[..HEADER_LEN],
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| {
            OpenFailure::Corrupt(
                "the encrypted contents fail their authentication check (altered or damaged)"
                    .to_owned(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(pin: &str, contents: &[u8]) -> (Vec<u8>, Header) {
        let header = new_header(KdfParams::insecure_for_tests());
        let key = StoreKey::derive(pin, &header).expect("kdf");
        (seal(&header, &key, contents).expect("seal"), header)
    }

    fn open_with(image: &[u8], pin: &str) -> Result<Vec<u8>, OpenFailure> {
        let header = parse_header(image)?;
        let key = StoreKey::derive(pin, &header)?;
        open(image, &key).map(|c| c.to_vec())
    }

    #[test]
    fn round_trip() {
        let (image, _) = sealed("123456", b"{\"hello\":1}");
        assert_eq!(image.len(), HEADER_LEN + 11 + 16);
        assert_eq!(
            open_with(&image, "123456").expect("opens"),
            b"{\"hello\":1}"
        );
    }

    /// Stores written before the key was derived in a caller-owned buffer must still open:
    /// the derivation is plain Argon2id over the header's parameters.
    #[test]
    fn store_key_is_plain_argon2id_of_the_pin() {
        let header = Header {
            kdf: KdfParams {
                memory_kib: 256,
                time_cost: 2,
                parallelism: 2,
            },
            salt: [5; 16],
        };
        let key = StoreKey::derive("493817", &header).expect("kdf");
        let params = argon2::Params::new(256, 2, 2, Some(32)).expect("params");
        let mut expected = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(b"493817", &[5; 16], &mut expected)
            .expect("argon2");
        assert_eq!(*key.0, expected);
    }

    #[test]
    fn wrong_pin_is_not_corruption() {
        let (image, _) = sealed("123456", b"secret");
        assert_eq!(open_with(&image, "654321"), Err(OpenFailure::WrongPin));
    }

    #[test]
    fn every_flipped_byte_is_corruption_never_wrong_pin() {
        let (image, _) = sealed("123456", b"some contents of a store");
        for index in 0..image.len() {
            let mut damaged = image.clone();
            damaged[index] ^= 0x40;
            match open_with(&damaged, "123456") {
                Err(OpenFailure::Corrupt(_)) => {}
                other => panic!("flip at {index}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_truncation_is_corruption() {
        let (image, _) = sealed("123456", b"some contents");
        for len in 0..image.len() {
            match open_with(&image[..len], "123456") {
                Err(OpenFailure::Corrupt(reason)) => {
                    if len >= 8 {
                        assert!(reason.contains("truncated"), "{len}: {reason}");
                    }
                }
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    /// The store writes 64 MiB / 3 passes; a header asking for more than 256 MiB or 16 passes
    /// is refused, so a planted store cannot exhaust the phone's memory or stall unlocking.
    #[test]
    fn kdf_bounds_admit_the_default_and_refuse_beyond_256_mib_or_16_passes() {
        assert_eq!(check_kdf(&KdfParams::default()), Ok(()));
        let at_limit = KdfParams {
            memory_kib: 256 * 1024,
            time_cost: 16,
            parallelism: 1,
        };
        assert_eq!(check_kdf(&at_limit), Ok(()));
        let more_memory = KdfParams {
            memory_kib: 256 * 1024 + 1,
            ..at_limit
        };
        assert!(check_kdf(&more_memory).is_err_and(|r| r.contains("262145 KiB")));
        let more_passes = KdfParams {
            time_cost: 17,
            ..at_limit
        };
        assert!(check_kdf(&more_passes).is_err_and(|r| r.contains("17 passes")));
    }

    #[test]
    fn hostile_kdf_parameters_are_refused_before_deriving() {
        let (mut image, _) = sealed("123456", b"x");
        image[11..15].copy_from_slice(&u32::MAX.to_be_bytes());
        let digest: [u8; 32] = Sha256::digest(&image[..91]).into();
        image[91..HEADER_LEN].copy_from_slice(&digest);
        assert!(
            matches!(parse_header(&image), Err(OpenFailure::Corrupt(r)) if r.contains("Argon2"))
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes at all are either a store or a typed refusal, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(header) = parse_header(&bytes) {
                // Only reachable with a valid digest; the KDF bounds were checked.
                prop_assert!(check_kdf(&header.kdf).is_ok());
            }
        }

        /// A real store with any single byte changed is refused as damaged.
        #[test]
        fn any_damage_is_detected(index in 0usize..200, flip in 1u8..=255) {
            let header = new_header(KdfParams::insecure_for_tests());
            let key = StoreKey::derive("123456", &header).expect("kdf");
            let mut image = seal(&header, &key, b"{\"credentials\":[1,2,3],\"x\":\"some padding text here\"}").expect("seal");
            let index = index % image.len();
            image[index] ^= flip;
            let result = parse_header(&image).and_then(|h| {
                let key = StoreKey::derive("123456", &h)?;
                open(&image, &key).map(|_| ())
            });
            prop_assert!(matches!(result, Err(OpenFailure::Corrupt(_))), "{:?}", result);
        }
    }
}
