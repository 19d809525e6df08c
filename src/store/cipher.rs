//! Keys for encryption at rest, derived from `store.encryption_key` (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore).
//!
//! One configured secret gives, through HKDF-SHA256 (ring), three independent values:
//! - SQLite: a raw 256-bit SQLCipher key (`PRAGMA key = "x'…'"`): SQLCipher then skips its own
//!   PBKDF2 pass, which would cost every new connection tens of milliseconds. The secret must
//!   therefore be random, not a password (at least [`MIN_KEY_CHARS`] characters, checked at load).
//! - PostgreSQL: an AES-256-GCM key for the columns carehub encrypts itself (message bodies,
//!   notification texts), and
//! - a 4-byte key id written in front of every such value, so that a value sealed with another
//!   key is named as such (and `carehub rekey` can resume: it skips what the new key sealed).
//!
//! Sealed values: `CHE1 | key id (4) | nonce (12) | ciphertext | tag (16)`; in text columns the
//! same bytes in base64 after `enc1:`. A nonce is random per value (2^32 values per key keep the
//! collision chance negligible; rotation resets the count). A value without the marker is read
//! as plain text: a store that gets a key later keeps its older rows readable until rekeyed.

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use super::StoreError;
use crate::config::Secret;

/// The shortest accepted `store.encryption_key`.
pub const MIN_KEY_CHARS: usize = 32;

const MAGIC: &[u8; 4] = b"CHE1";
const TEXT_PREFIX: &str = "enc1:";
const HEADER: usize = 4 + 4 + NONCE_LEN;

/// The keys derived from one configured secret.
pub struct StoreKey {
    sqlite_hex: String,
    aead: LessSafeKey,
    id: [u8; 4],
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey(id {})", self.id_hex())
    }
}

fn derive(secret: &Secret, info: &'static [u8], out: &mut [u8]) {
    // A fixed salt: the input is already a random secret (RFC 5869 §3.1 allows it).
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"carehub store key").extract(secret.expose().as_bytes());
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let infos = [info];
    prk.expand(&infos, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output of at most 255 blocks");
}

impl StoreKey {
    pub fn new(secret: &Secret) -> StoreKey {
        let mut sqlite = [0u8; 32];
        derive(secret, b"sqlcipher raw key v1", &mut sqlite);
        let mut aead = [0u8; 32];
        derive(secret, b"aes-256-gcm columns v1", &mut aead);
        let mut id = [0u8; 4];
        derive(secret, b"key id v1", &mut id);
        StoreKey {
            sqlite_hex: hex(&sqlite),
            aead: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &aead).expect("a 32-byte key")),
            id,
        }
    }

    /// The key from a configuration, if one is set.
    pub fn from_config(secret: Option<&Secret>) -> Option<std::sync::Arc<StoreKey>> {
        secret.map(|s| std::sync::Arc::new(StoreKey::new(s)))
    }

    /// The value of SQLCipher's `PRAGMA key` (and `KEY` of `ATTACH`): a raw key literal.
    pub fn sqlcipher_literal(&self) -> String {
        format!("\"x'{}'\"", self.sqlite_hex)
    }

    /// The key id, as written before every sealed value, in hex (for messages).
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// Seals bytes; `column` is bound as associated data (a value cannot be moved to another
    /// column unnoticed).
    pub fn seal(&self, column: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut out = Vec::with_capacity(HEADER + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(column.as_bytes()),
                &mut body,
            )
            .expect("AES-GCM seals any length carehub stores");
        out.extend_from_slice(&body);
        out
    }

    /// Seals a text: `enc1:` and the sealed bytes in base64.
    pub fn seal_text(&self, column: &str, plain: &str) -> String {
        let sealed = self.seal(column, plain.as_bytes());
        format!(
            "{TEXT_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed)
        )
    }

    /// True when `value` was sealed by this key.
    pub fn sealed_by_me(&self, value: &[u8]) -> bool {
        is_sealed(value) && value[4..8] == self.id
    }

    /// True when a text was sealed by this key.
    pub fn text_sealed_by_me(&self, value: &str) -> bool {
        text_bytes(value).is_some_and(|b| self.sealed_by_me(&b))
    }

    fn open_sealed(&self, column: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if value[4..8] != self.id {
            return Err(StoreError::Cipher(format!(
                "a value in {column} is sealed with key id {}, not the configured key's {}: \
                 configure the key it was written with (or finish `carehub rekey`)",
                hex(&value[4..8]),
                self.id_hex()
            )));
        }
        let nonce = Nonce::try_assume_unique_for_key(&value[8..HEADER]).expect("12 bytes");
        let mut body = value[HEADER..].to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(column.as_bytes()), &mut body)
            .map_err(|_| StoreError::Cipher(format!("a value in {column} fails its authentication check")))?;
        Ok(plain.to_vec())
    }
}

/// True when bytes carry the sealed-value marker.
pub fn is_sealed(value: &[u8]) -> bool {
    value.len() >= HEADER + AES_256_GCM.tag_len() && value.starts_with(MAGIC)
}

fn text_bytes(value: &str) -> Option<Vec<u8>> {
    let b64 = value.strip_prefix(TEXT_PREFIX)?;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64)
        .ok()
        .filter(|b| is_sealed(b))
}

/// Opens a stored value: sealed ones with `key` (an error without one), plain ones as they are.
pub fn open(key: Option<&StoreKey>, column: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if !is_sealed(&value) {
        return Ok(value);
    }
    match key {
        Some(k) => k.open_sealed(column, &value),
        None => Err(StoreError::Cipher(format!(
            "a value in {column} is encrypted and no store.encryption_key is configured"
        ))),
    }
}

/// [`open`] for a text column.
pub fn open_text(
    key: Option<&StoreKey>,
    column: &str,
    value: Option<String>,
) -> Result<Option<String>, StoreError> {
    let Some(value) = value else { return Ok(None) };
    let Some(sealed) = text_bytes(&value) else {
        return Ok(Some(value));
    };
    let plain = open(key, column, sealed)?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(|_| StoreError::Cipher(format!("a value in {column} is not UTF-8 once opened")))
}

/// Seals with `key` when there is one; the value as it is otherwise.
pub fn seal(key: Option<&StoreKey>, column: &str, plain: &[u8]) -> Vec<u8> {
    match key {
        Some(k) => k.seal(column, plain),
        None => plain.to_vec(),
    }
}

/// [`seal`] for a text column.
pub fn seal_text(key: Option<&StoreKey>, column: &str, plain: Option<&str>) -> Option<String> {
    plain.map(|p| match key {
        Some(k) => k.seal_text(column, p),
        None => p.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StoreKey {
        StoreKey::new(&Secret::new(s))
    }

    #[test]
    fn sealed_values_open_with_their_key_only() {
        let a = key("a-random-secret-of-at-least-32-characters");
        let b = key("another-random-secret-of-32-characters!!");
        let sealed = a.seal("messages.raw", b"MSH|^~\\&|Nguyen Van A");
        assert!(!sealed.windows(6).any(|w| w == b"Nguyen"));
        assert_eq!(
            open(Some(&a), "messages.raw", sealed.clone()).unwrap(),
            b"MSH|^~\\&|Nguyen Van A"
        );
        assert!(open(Some(&b), "messages.raw", sealed.clone()).is_err());
        assert!(open(None, "messages.raw", sealed.clone()).is_err());
        // Bound to its column.
        assert!(open(Some(&a), "notifications.body", sealed).is_err());
        // Plain values pass through.
        assert_eq!(open(Some(&a), "messages.raw", b"MSH|".to_vec()).unwrap(), b"MSH|");
    }

    #[test]
    fn texts_round_trip_and_nonces_differ() {
        let a = key("a-random-secret-of-at-least-32-characters");
        let one = a.seal_text("notifications.body", "Chào chị Lan");
        let two = a.seal_text("notifications.body", "Chào chị Lan");
        assert_ne!(one, two);
        assert!(a.text_sealed_by_me(&one));
        assert_eq!(
            open_text(Some(&a), "notifications.body", Some(one))
                .unwrap()
                .as_deref(),
            Some("Chào chị Lan")
        );
        assert_eq!(
            open_text(None, "notifications.body", Some("plain".into()))
                .unwrap()
                .as_deref(),
            Some("plain")
        );
    }
}
