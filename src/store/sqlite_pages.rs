//! SQLCipher's page crypto, done with the same algorithms in the same format, at less cost per
//! page (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore).
//!
//! SQLCipher encrypts and authenticates every page through a *provider*, a table of C
//! functions. Its OpenSSL provider builds everything anew for each page: a cipher context and
//! its AES key schedule, an HMAC fetched from OpenSSL's algorithm registry with its key pads,
//! and the page's IV from `RAND_bytes` behind a process-wide mutex. For a 4 KB page that set-up
//! cost as much as the AES and SHA-256 work itself (docs/benchmarks.md, "Encryption at rest").
//! This provider is SQLCipher's own OpenSSL provider with three of its functions replaced:
//! - `cipher`: AES-256-CBC through the same libcrypto (EVP), one context per direction kept for
//!   the connection's life; a page only sets its IV;
//! - `hmac`: HMAC-SHA256 and HMAC-SHA512 through ring (SHA extensions), the key pads computed
//!   once per key (HMAC-SHA1, never used by carehub, stays OpenSSL's);
//! - `random`: the IV and reserve bytes of each page written, from a ChaCha12 CSPRNG per
//!   connection (rand's `StdRng`), seeded from the operating system and reseeded every 64 KiB.
//!
//! Key derivation, names and sizes stay OpenSSL's. Files are byte-compatible both ways with
//! stock SQLCipher (a unit test checks each function against the OpenSSL provider's).
//!
//! It must not change the file format, and it holds its copies of a connection's keys (and
//! the key schedules) no longer than the connection: they are wiped when it closes.

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::sync::OnceLock;

use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};

use super::StoreError;

const SQLITE_OK: c_int = 0;
const SQLITE_ERROR: c_int = 1;
const HMAC_SHA256: c_int = 1;
const HMAC_SHA512: c_int = 2;
const ENCRYPT: c_int = 1;
/// Bytes drawn from a connection's generator before it is seeded again.
const RESEED_BYTES: usize = 64 * 1024;

type HmacFn = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    c_int,
    *mut c_uchar,
) -> c_int;
type CipherFn = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    *const c_uchar,
    c_int,
    *mut c_uchar,
) -> c_int;
type RandomFn = unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int;
type CtxFn = unsafe extern "C" fn(*mut *mut c_void) -> c_int;

/// SQLCipher's `sqlcipher_provider` (SQLCipher 4.10, `crypto.h`), field for field.
#[repr(C)]
#[derive(Clone, Copy)]
struct Provider {
    init: Option<unsafe extern "C" fn() -> c_int>,
    shutdown: Option<unsafe extern "C" fn()>,
    get_provider_name: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    add_random: Option<unsafe extern "C" fn(*mut c_void, *const c_void, c_int) -> c_int>,
    random: Option<RandomFn>,
    hmac: Option<HmacFn>,
    kdf: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *const c_uchar,
            c_int,
            *const c_uchar,
            c_int,
            c_int,
            c_int,
            *mut c_uchar,
        ) -> c_int,
    >,
    cipher: Option<CipherFn>,
    get_cipher: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    get_key_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_iv_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_block_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_hmac_sz: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    ctx_init: Option<CtxFn>,
    ctx_free: Option<CtxFn>,
    fips_status: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_provider_version: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    next: *mut Provider,
}

// SQLCipher's provider registry, in the amalgamation libsqlite3-sys builds (`bundled-sqlcipher`).
unsafe extern "C" {
    fn sqlcipher_get_provider() -> *mut Provider;
    fn sqlcipher_malloc(size: u64) -> *mut c_void;
    fn sqlcipher_register_provider(p: *mut Provider) -> c_int;
}

// The libcrypto SQLCipher links (libsqlite3-sys adds it to the link line).
#[link(name = "crypto")]
unsafe extern "C" {
    fn EVP_aes_256_cbc() -> *const c_void;
    fn EVP_CIPHER_CTX_new() -> *mut c_void;
    fn EVP_CIPHER_CTX_free(ctx: *mut c_void);
    fn EVP_CIPHER_CTX_set_padding(ctx: *mut c_void, pad: c_int) -> c_int;
    fn EVP_CipherInit_ex(
        ctx: *mut c_void,
        cipher: *const c_void,
        engine: *mut c_void,
        key: *const c_uchar,
        iv: *const c_uchar,
        enc: c_int,
    ) -> c_int;
    fn EVP_CipherUpdate(
        ctx: *mut c_void,
        out: *mut c_uchar,
        outl: *mut c_int,
        input: *const c_uchar,
        inl: c_int,
    ) -> c_int;
    fn EVP_CipherFinal_ex(ctx: *mut c_void, out: *mut c_uchar, outl: *mut c_int) -> c_int;
}

/// The functions of SQLCipher's OpenSSL provider this one calls or stands in for.
#[derive(Clone, Copy)]
struct Openssl {
    hmac: HmacFn,
    cipher: CipherFn,
    random: RandomFn,
    ctx_init: CtxFn,
    ctx_free: CtxFn,
}

static OPENSSL: OnceLock<Openssl> = OnceLock::new();

/// Makes this provider SQLCipher's default, once per process. Must run before the first keyed
/// connection: a connection keeps the provider it was opened with.
pub(super) fn install() -> Result<(), StoreError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: SQLite's initialisation registers SQLCipher's default provider; it is
        // idempotent and thread-safe. The provider read is a table SQLCipher frees only at its
        // shutdown; ours is SQLCipher's to free from then on, like its own.
        unsafe {
            if rusqlite::ffi::sqlite3_initialize() != SQLITE_OK {
                return Err("SQLite did not initialise".into());
            }
            let current = sqlcipher_get_provider();
            if current.is_null() {
                return Err("SQLCipher has no crypto provider".into());
            }
            let stock = *current;
            let (Some(hmac), Some(cipher), Some(random), Some(ctx_init), Some(ctx_free)) = (
                stock.hmac,
                stock.cipher,
                stock.random,
                stock.ctx_init,
                stock.ctx_free,
            ) else {
                return Err("SQLCipher's provider lacks a function".into());
            };
            let _ = OPENSSL.set(Openssl {
                hmac,
                cipher,
                random,
                ctx_init,
                ctx_free,
            });
            // From SQLCipher's own allocator: its shutdown (also run at exit) frees every
            // registered provider with `sqlcipher_free`.
            let ours = sqlcipher_malloc(std::mem::size_of::<Provider>() as u64).cast::<Provider>();
            if ours.is_null() {
                return Err("no memory for the page provider".into());
            }
            ours.write(Provider {
                init: None,
                shutdown: None,
                hmac: Some(page_hmac),
                cipher: Some(page_cipher),
                random: Some(page_random),
                ctx_init: Some(pages_init),
                ctx_free: Some(pages_free),
                next: std::ptr::null_mut(),
                ..stock
            });
            match sqlcipher_register_provider(ours) {
                SQLITE_OK => Ok(()),
                rc => Err(format!("SQLCipher refused the page provider ({rc})")),
            }
        }
    })
    .clone()
    .map_err(|e| StoreError::Failed(format!("cannot set up SQLCipher's page crypto: {e}")))
}

fn openssl() -> &'static Openssl {
    OPENSSL.get().expect("set before the provider is registered")
}

/// A copy of a key, wiped when dropped.
struct KeyCopy {
    bytes: [u8; 64],
    len: usize,
}

impl KeyCopy {
    fn new(key: &[u8]) -> Option<KeyCopy> {
        let mut bytes = [0u8; 64];
        bytes.get_mut(..key.len())?.copy_from_slice(key);
        Some(KeyCopy {
            bytes,
            len: key.len(),
        })
    }

    /// Whether `key` is this one; the time taken does not depend on where they differ.
    fn is(&self, key: &[u8]) -> bool {
        key.len() == self.len
            && key
                .iter()
                .zip(&self.bytes)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

impl Drop for KeyCopy {
    fn drop(&mut self) {
        for b in &mut self.bytes {
            // SAFETY: a valid, aligned, exclusive reference; volatile so the wipe stays.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// An AES-256-CBC context with its key schedule, for one direction.
struct Cbc {
    ctx: *mut c_void,
    key: KeyCopy,
}

impl Cbc {
    fn new(key: &[u8], mode: c_int) -> Option<Cbc> {
        let copy = KeyCopy::new(key)?;
        // SAFETY: a fresh context; EVP_aes_256_cbc is a static table. The key is 32 bytes
        // (SQLCipher's key size for this cipher), checked by the caller.
        unsafe {
            let ctx = EVP_CIPHER_CTX_new();
            if ctx.is_null() {
                return None;
            }
            let cbc = Cbc { ctx, key: copy };
            let ready = EVP_CipherInit_ex(
                ctx,
                EVP_aes_256_cbc(),
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
                mode,
            ) == 1
                && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1
                && EVP_CipherInit_ex(
                    ctx,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    key.as_ptr(),
                    std::ptr::null(),
                    mode,
                ) == 1;
            ready.then_some(cbc)
        }
    }
}

impl Drop for Cbc {
    fn drop(&mut self) {
        // SAFETY: the context was made by EVP_CIPHER_CTX_new and is freed once; OpenSSL
        // wipes the key schedule.
        unsafe { EVP_CIPHER_CTX_free(self.ctx) };
    }
}

/// An HMAC key with its pads computed.
struct Mac {
    algorithm: c_int,
    key: KeyCopy,
    ring: ring::hmac::Key,
}

/// This provider's state for one SQLCipher codec (one database of one connection). SQLite
/// runs one statement at a time per connection, so it is never used by two threads at once.
struct Pages {
    encrypt: Option<Cbc>,
    decrypt: Option<Cbc>,
    mac: Option<Mac>,
    rng: StdRng,
    drawn: usize,
}

impl Pages {
    fn new() -> Option<Pages> {
        Some(Pages {
            encrypt: None,
            decrypt: None,
            mac: None,
            rng: StdRng::try_from_rng(&mut SysRng).ok()?,
            drawn: 0,
        })
    }

    fn fill(&mut self, out: &mut [u8]) -> bool {
        if self.drawn >= RESEED_BYTES {
            match StdRng::try_from_rng(&mut SysRng) {
                Ok(rng) => self.rng = rng,
                Err(_) => return false,
            }
            self.drawn = 0;
        }
        self.rng.fill_bytes(out);
        self.drawn += out.len();
        true
    }

    fn cbc(&mut self, mode: c_int, key: &[u8]) -> Option<&mut Cbc> {
        let slot = if mode == ENCRYPT {
            &mut self.encrypt
        } else {
            &mut self.decrypt
        };
        if !slot.as_ref().is_some_and(|c| c.key.is(key)) {
            *slot = None;
            *slot = Some(Cbc::new(key, mode)?);
        }
        slot.as_mut()
    }

    fn mac(&mut self, algorithm: c_int, key: &[u8]) -> Option<&Mac> {
        let fits = |m: &Mac| m.algorithm == algorithm && m.key.is(key);
        if !self.mac.as_ref().is_some_and(fits) {
            let ring_algorithm = match algorithm {
                HMAC_SHA256 => ring::hmac::HMAC_SHA256,
                HMAC_SHA512 => ring::hmac::HMAC_SHA512,
                _ => return None,
            };
            self.mac = None;
            self.mac = Some(Mac {
                algorithm,
                key: KeyCopy::new(key)?,
                ring: ring::hmac::Key::new(ring_algorithm, key),
            });
        }
        self.mac.as_ref()
    }
}

/// # Safety
/// `ctx` is null or a `Pages` made by [`pages_init`] and not yet freed.
unsafe fn pages<'a>(ctx: *mut c_void) -> Option<&'a mut Pages> {
    // SAFETY: per this function's contract.
    unsafe { ctx.cast::<Pages>().as_mut() }
}

/// Bytes SQLCipher hands over, as a slice (empty for a null pointer or a negative length).
///
/// # Safety
/// A non-null `ptr` points to `len` readable bytes.
unsafe fn bytes<'a>(ptr: *const c_uchar, len: c_int) -> &'a [u8] {
    match usize::try_from(len) {
        // SAFETY: per this function's contract.
        Ok(n) if !ptr.is_null() => unsafe { std::slice::from_raw_parts(ptr, n) },
        _ => &[],
    }
}

unsafe extern "C" fn pages_init(ctx: *mut *mut c_void) -> c_int {
    let stock = openssl();
    // SAFETY: SQLCipher passes a valid slot; OpenSSL's own init counts libcrypto's users.
    unsafe {
        let rc = (stock.ctx_init)(ctx);
        if rc != SQLITE_OK {
            return rc;
        }
        match Pages::new() {
            Some(pages) => {
                *ctx = Box::into_raw(Box::new(pages)).cast();
                SQLITE_OK
            }
            None => {
                (stock.ctx_free)(ctx);
                SQLITE_ERROR
            }
        }
    }
}

unsafe extern "C" fn pages_free(ctx: *mut *mut c_void) -> c_int {
    // SAFETY: SQLCipher frees each codec's context once, with the slot `pages_init` filled.
    unsafe {
        if !(*ctx).is_null() {
            drop(Box::from_raw((*ctx).cast::<Pages>()));
            *ctx = std::ptr::null_mut();
        }
        (openssl().ctx_free)(ctx)
    }
}

unsafe extern "C" fn page_random(ctx: *mut c_void, buffer: *mut c_void, length: c_int) -> c_int {
    // SAFETY: SQLCipher passes `length` writable bytes and its codec's context.
    unsafe {
        let Some(pages) = pages(ctx) else {
            return (openssl().random)(ctx, buffer, length);
        };
        let Ok(n) = usize::try_from(length) else {
            return SQLITE_ERROR;
        };
        if buffer.is_null() {
            return SQLITE_ERROR;
        }
        let out = std::slice::from_raw_parts_mut(buffer.cast::<u8>(), n);
        if pages.fill(out) { SQLITE_OK } else { SQLITE_ERROR }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn page_hmac(
    ctx: *mut c_void,
    algorithm: c_int,
    hmac_key: *const c_uchar,
    key_sz: c_int,
    input: *const c_uchar,
    in_sz: c_int,
    in2: *const c_uchar,
    in2_sz: c_int,
    out: *mut c_uchar,
) -> c_int {
    // SAFETY: SQLCipher passes readable key and inputs of the sizes given, and an output with
    // room for the algorithm's digest (its `get_hmac_sz`).
    unsafe {
        let stock = || (openssl().hmac)(ctx, algorithm, hmac_key, key_sz, input, in_sz, in2, in2_sz, out);
        if input.is_null() || out.is_null() || hmac_key.is_null() {
            return SQLITE_ERROR;
        }
        let Some(pages) = pages(ctx) else {
            return stock();
        };
        let Some(mac) = pages.mac(algorithm, bytes(hmac_key, key_sz)) else {
            return stock();
        };
        let mut running = ring::hmac::Context::with_key(&mac.ring);
        running.update(bytes(input, in_sz));
        running.update(bytes(in2, in2_sz));
        let tag = running.sign();
        let tag = tag.as_ref();
        std::ptr::copy_nonoverlapping(tag.as_ptr(), out, tag.len());
        SQLITE_OK
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn page_cipher(
    ctx: *mut c_void,
    mode: c_int,
    key: *const c_uchar,
    key_sz: c_int,
    iv: *const c_uchar,
    input: *const c_uchar,
    in_sz: c_int,
    out: *mut c_uchar,
) -> c_int {
    // SAFETY: SQLCipher passes a 32-byte key, a 16-byte IV, and `in_sz` bytes to read and to
    // write (a multiple of the block size).
    unsafe {
        let stock = || (openssl().cipher)(ctx, mode, key, key_sz, iv, input, in_sz, out);
        let Some(pages) = pages(ctx) else {
            return stock();
        };
        if key.is_null() || key_sz != 32 || iv.is_null() || input.is_null() || out.is_null() {
            return stock();
        }
        let Some(cbc) = pages.cbc(mode, bytes(key, key_sz)) else {
            return SQLITE_ERROR;
        };
        let (mut written, mut tail) = (0, 0);
        let done = EVP_CipherInit_ex(
            cbc.ctx,
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            iv,
            mode,
        ) == 1
            && EVP_CipherUpdate(cbc.ctx, out, &mut written, input, in_sz) == 1
            && EVP_CipherFinal_ex(cbc.ctx, out.add(written as usize), &mut tail) == 1
            && written + tail == in_sz;
        if done { SQLITE_OK } else { SQLITE_ERROR }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn stock_init() -> *mut c_void {
        let mut ctx = std::ptr::null_mut();
        // SAFETY: OpenSSL's provider context (it keeps none: the slot stays null).
        assert_eq!(unsafe { (openssl().ctx_init)(&mut ctx) }, SQLITE_OK);
        ctx
    }

    #[test]
    fn pages_are_encrypted_and_authenticated_exactly_as_openssls_provider_does() {
        install().unwrap();
        let stock = *openssl();
        let stock_ctx = stock_init();
        let mut ours: *mut c_void = std::ptr::null_mut();
        // SAFETY: the provider's own life cycle: init, use, free.
        unsafe { assert_eq!(pages_init(&mut ours), SQLITE_OK) };
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..6 {
            // Keys change between rounds, as with an ATTACHed database under another key.
            let key: [u8; 32] = rng.random();
            let hmac_key: [u8; 32] = rng.random();
            let iv: [u8; 16] = rng.random();
            let mut page = vec![0u8; 4096 - 48];
            rng.fill_bytes(&mut page);
            let pgno = (round as u32).to_le_bytes();
            for mode in [ENCRYPT, 0, ENCRYPT] {
                let (mut a, mut b) = (vec![0u8; page.len()], vec![0u8; page.len()]);
                // SAFETY: buffers of the sizes given.
                unsafe {
                    assert_eq!(
                        (stock.cipher)(
                            stock_ctx,
                            mode,
                            key.as_ptr(),
                            32,
                            iv.as_ptr(),
                            page.as_ptr(),
                            page.len() as c_int,
                            a.as_mut_ptr()
                        ),
                        SQLITE_OK
                    );
                    assert_eq!(
                        page_cipher(
                            ours,
                            mode,
                            key.as_ptr(),
                            32,
                            iv.as_ptr(),
                            page.as_ptr(),
                            page.len() as c_int,
                            b.as_mut_ptr()
                        ),
                        SQLITE_OK
                    );
                }
                assert_eq!(a, b, "round {round}, mode {mode}");
                assert_ne!(a, page);
            }
            for algorithm in [HMAC_SHA256, HMAC_SHA512] {
                let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
                // SAFETY: as above; 64 bytes hold either digest.
                unsafe {
                    assert_eq!(
                        (stock.hmac)(
                            stock_ctx,
                            algorithm,
                            hmac_key.as_ptr(),
                            32,
                            page.as_ptr(),
                            page.len() as c_int,
                            pgno.as_ptr(),
                            4,
                            a.as_mut_ptr()
                        ),
                        SQLITE_OK
                    );
                    assert_eq!(
                        page_hmac(
                            ours,
                            algorithm,
                            hmac_key.as_ptr(),
                            32,
                            page.as_ptr(),
                            page.len() as c_int,
                            pgno.as_ptr(),
                            4,
                            b.as_mut_ptr()
                        ),
                        SQLITE_OK
                    );
                }
                assert_eq!(a, b, "round {round}, algorithm {algorithm}");
            }
        }
        // Page IVs: fresh bytes on every call.
        let (mut x, mut y) = ([0u8; 48], [0u8; 48]);
        // SAFETY: 48 writable bytes each.
        unsafe {
            assert_eq!(page_random(ours, x.as_mut_ptr().cast(), 48), SQLITE_OK);
            assert_eq!(page_random(ours, y.as_mut_ptr().cast(), 48), SQLITE_OK);
            assert_eq!(pages_free(&mut ours), SQLITE_OK);
            let mut stock_ctx = stock_ctx;
            (stock.ctx_free)(&mut stock_ctx);
        }
        assert!(ours.is_null());
        assert_ne!(x, y);
        assert_ne!(x, [0u8; 48]);
    }
}
