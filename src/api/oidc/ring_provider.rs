//! `ring` as jsonwebtoken's crypto provider, for verification only.
//!
//! jsonwebtoken 10+ ships two backends, `aws_lc_rs` (a C/assembly build carehub keeps out, see
//! Cargo.toml) and `rust_crypto` (a dozen new crates, among them `rsa`). `ring` is in the tree
//! already (rustls), so the few lines here hand it the signatures: RSA PKCS#1 v1.5 and PSS over
//! (n, e) from the JWK, ECDSA P-256/P-384 over the uncompressed point. Signing and HMAC are
//! refused: carehub never issues JWTs and never accepts HS*.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as ring_sig;

/// The provider `OidcVerifier::new` installs.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: ec_unsupported,
        ed_pub_components_from_private_key: ed_unsupported,
        compute_digest,
    },
};

fn unsupported() -> Error {
    ErrorKind::Provider("carehub's jsonwebtoken provider only verifies signatures".into()).into()
}
fn ec_unsupported(_: &[u8], _: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    Err(unsupported())
}
fn ed_unsupported(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>, Error> {
    Err(unsupported())
}
fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(unsupported()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

fn new_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(unsupported())
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let fits = match key.family() {
        AlgorithmFamily::Rsa => matches!(key.kind(), DecodingKeyKind::RsaModulusExponent { .. }),
        AlgorithmFamily::Ec => matches!(key.kind(), DecodingKeyKind::SecretOrDer(_)),
        _ => false,
    };
    if !fits || alg.family() != key.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    if !matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) {
        return Err(ErrorKind::UnsupportedAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        alg: *alg,
        key: key.clone(),
    }))
}

struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let rsa = |params: &'static ring_sig::RsaParameters| match self.key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => ring_sig::RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok(),
            DecodingKeyKind::SecretOrDer(_) => false,
        };
        let ec = |params: &'static ring_sig::EcdsaVerificationAlgorithm| match self.key.kind() {
            DecodingKeyKind::SecretOrDer(point) => ring_sig::UnparsedPublicKey::new(params, point)
                .verify(msg, sig)
                .is_ok(),
            DecodingKeyKind::RsaModulusExponent { .. } => false,
        };
        let ok = match self.alg {
            Algorithm::RS256 => rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => rsa(&ring_sig::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => rsa(&ring_sig::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => rsa(&ring_sig::RSA_PSS_2048_8192_SHA512),
            Algorithm::ES256 => ec(&ring_sig::ECDSA_P256_SHA256_FIXED),
            Algorithm::ES384 => ec(&ring_sig::ECDSA_P384_SHA384_FIXED),
            _ => false,
        };
        if ok { Ok(()) } else { Err(signature::Error::new()) }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}
