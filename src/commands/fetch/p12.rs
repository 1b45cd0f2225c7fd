//! `--format p12`: `DIR/cert.p12`, a PKCS#12 file (RFC 7292) holding the private key and the
//! full chain, for Java and Windows.
//!
//! Encoded here with yasna (already in the tree through rcgen) and aws-lc-rs, the one crypto
//! stack: the `p12-keystore` crate would bring RustCrypto's ciphers as a second one
//! (docs/design/dependencies.md). The encryption is what OpenSSL 3 writes by default and what
//! Java 17 reads:
//!
//! - the key in a `pkcs8ShroudedKeyBag`, encrypted with PBES2 (PBKDF2-HMAC-SHA256, 2048
//!   iterations, 16-byte salt; AES-256-CBC, random IV);
//! - the certificates in `certBag`s, leaf first, in a plain `data` SafeContents (certificates
//!   are public; both readers accept it);
//! - the leaf's bag and the key's bag share a `localKeyId` (the SHA-256 of the leaf) and a
//!   `friendlyName`, so keytool pairs them into one PrivateKeyEntry whose chain is the leaf
//!   plus the intermediates;
//! - the whole sealed by a MAC: HMAC-SHA256 keyed by the PKCS#12 KDF (RFC 7292 appendix B,
//!   SHA-256, 2048 iterations) over the password as a BMPString.
//!
//! PBKDF2 takes the password's UTF-8 bytes (as OpenSSL and Java do for PBES2); the MAC's KDF
//! its big-endian UTF-16 with a terminating NUL.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::{digest, hmac, pbkdf2};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

/// Iterations of PBKDF2 and of the MAC's KDF: OpenSSL's default.
const ITERATIONS: u32 = 2048;
/// The friendly name (alias) of the entry, as keytool lists it.
pub(super) const ALIAS: &str = "certfleet";

const ID_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const PKCS8_SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 2];
const CERT_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 3];
const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 22, 1];
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 20];
const LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113_549, 1, 9, 21];
const PBES2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 13];
const PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const HMAC_WITH_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const AES_256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// The random values of one file: fixed in tests, drawn from the system otherwise.
#[derive(Debug, Clone, Copy)]
pub(super) struct Salts {
    /// PBKDF2's salt for the key.
    pub(super) key_salt: [u8; 16],
    /// AES-CBC's IV for the key.
    pub(super) iv: [u8; 16],
    /// The MAC's salt.
    pub(super) mac_salt: [u8; 16],
}

impl Salts {
    /// Fresh values from the system's random source.
    pub(super) fn random() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut salts = Self {
            key_salt: [0; 16],
            iv: [0; 16],
            mac_salt: [0; 16],
        };
        aws_lc_rs::rand::fill(&mut salts.key_salt)?;
        aws_lc_rs::rand::fill(&mut salts.iv)?;
        aws_lc_rs::rand::fill(&mut salts.mac_salt)?;
        Ok(salts)
    }
}

/// The DER of a PKCS#12 file holding `key_pkcs8` (a PKCS#8 PrivateKeyInfo, DER) and `chain`
/// (certificate DERs, the leaf first), protected by `password`.
pub(super) fn encode(
    key_pkcs8: &[u8],
    chain: &[&[u8]],
    password: &str,
    salts: Salts,
) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let leaf = chain.first().ok_or(aws_lc_rs::error::Unspecified)?;
    let key_id = digest::digest(&digest::SHA256, leaf);
    let key_id = key_id.as_ref();
    let shrouded = encrypt_key(key_pkcs8, password, &salts)?;

    let cert_bags = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            for (i, cert) in chain.iter().enumerate() {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(CERT_BAG));
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            w.next().write_oid(&oid(X509_CERTIFICATE));
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_bytes(cert));
                        });
                    });
                    if i == 0 {
                        attributes(w.next(), key_id);
                    }
                });
            }
        });
    });
    let key_bags = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(PKCS8_SHROUDED_KEY_BAG));
                w.next()
                    .write_tagged(Tag::context(0), |w| w.write_der(&shrouded));
                attributes(w.next(), key_id);
            });
        });
    });
    let auth_safe = yasna::construct_der(|w| {
        w.write_sequence_of(|w| {
            data_content_info(w.next(), &cert_bags);
            data_content_info(w.next(), &key_bags);
        });
    });

    let mac_key = pkcs12_kdf_mac_key(password, &salts.mac_salt);
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &auth_safe);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(3);
            data_content_info(w.next(), &auth_safe);
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    algorithm(w.next(), SHA256);
                    w.next().write_bytes(mac.as_ref());
                });
                w.next().write_bytes(&salts.mac_salt);
                w.next().write_u32(ITERATIONS);
            });
        });
    }))
}

/// A `ContentInfo` of type `data` around `content`.
fn data_content_info(w: DERWriter<'_>, content: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(ID_DATA));
        w.next()
            .write_tagged(Tag::context(0), |w| w.write_bytes(content));
    });
}

/// The bag attributes pairing the key with its leaf: `friendlyName` and `localKeyId`.
fn attributes(w: DERWriter<'_>, key_id: &[u8]) {
    w.write_set_of(|w| {
        w.next().write_sequence(|w| {
            w.next().write_oid(&oid(FRIENDLY_NAME));
            w.next().write_set_of(|w| w.next().write_bmp_string(ALIAS));
        });
        w.next().write_sequence(|w| {
            w.next().write_oid(&oid(LOCAL_KEY_ID));
            w.next().write_set_of(|w| w.next().write_bytes(key_id));
        });
    });
}

/// An `AlgorithmIdentifier` with NULL parameters.
fn algorithm(w: DERWriter<'_>, id: &[u64]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(id));
        w.next().write_null();
    });
}

/// The key as an `EncryptedPrivateKeyInfo` (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC), DER.
fn encrypt_key(
    key_pkcs8: &[u8],
    password: &str,
    salts: &Salts,
) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let mut aes_key = [0u8; 32];
    let iterations = NonZeroU32::new(ITERATIONS).ok_or(aws_lc_rs::error::Unspecified)?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salts.key_salt,
        password.as_bytes(),
        &mut aes_key,
    );
    let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &aes_key)?)?;
    let mut sealed = key_pkcs8.to_vec();
    cipher.less_safe_encrypt(&mut sealed, EncryptionContext::Iv128(salts.iv.into()))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(PBES2));
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(PBKDF2));
                        w.next().write_sequence(|w| {
                            w.next().write_bytes(&salts.key_salt);
                            w.next().write_u32(ITERATIONS);
                            algorithm(w.next(), HMAC_WITH_SHA256);
                        });
                    });
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(AES_256_CBC));
                        w.next().write_bytes(&salts.iv);
                    });
                });
            });
            w.next().write_bytes(&sealed);
        });
    }))
}

/// The MAC key: RFC 7292 appendix B.2 with SHA-256 (u = 32, v = 64), ID 3, n = 32 bytes. With
/// n = u a single block A_1 is the key, so the I-update step of the algorithm never runs.
fn pkcs12_kdf_mac_key(password: &str, salt: &[u8]) -> [u8; 32] {
    const V: usize = 64;
    let mut bmp: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    bmp.extend_from_slice(&[0, 0]);
    let stretch = |bytes: &[u8]| -> Vec<u8> {
        if bytes.is_empty() {
            return Vec::new();
        }
        let len = V * bytes.len().div_ceil(V);
        bytes.iter().copied().cycle().take(len).collect()
    };
    let mut input = vec![3u8; V];
    input.extend(stretch(salt));
    input.extend(stretch(&bmp));
    let mut block = digest::digest(&digest::SHA256, &input);
    for _ in 1..ITERATIONS {
        block = digest::digest(&digest::SHA256, block.as_ref());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(block.as_ref());
    key
}

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

#[cfg(test)]
#[allow(
    clippy::redundant_closure_for_method_calls,
    reason = "yasna's reader methods as paths are not general over the reader's lifetime"
)]
mod tests {
    use super::*;

    const SALTS: Salts = Salts {
        key_salt: [1; 16],
        iv: [2; 16],
        mac_salt: [3; 16],
    };

    #[test]
    fn the_mac_key_follows_rfc_7292_appendix_b() {
        // The same derivation written out long-hand: D (64 x 0x03) || S stretched to 64 bytes
        // || P (BMP "ab" + NUL = 6 bytes) stretched to 64 bytes, hashed 2048 times.
        let salt = [9u8; 8];
        let mut input = vec![3u8; 64];
        input.extend(std::iter::repeat_n(9u8, 64));
        let bmp = [0u8, b'a', 0, b'b', 0, 0];
        input.extend(bmp.iter().copied().cycle().take(64));
        let mut want = digest::digest(&digest::SHA256, &input).as_ref().to_vec();
        for _ in 1..2048 {
            want = digest::digest(&digest::SHA256, &want).as_ref().to_vec();
        }
        assert_eq!(pkcs12_kdf_mac_key("ab", &salt).to_vec(), want);
    }

    #[test]
    fn the_file_parses_and_its_mac_and_key_check_out() {
        let key = rcgen::KeyPair::generate().expect("key");
        let key_der = key.serialize_der();
        let (leaf, chain) = (b"leaf-der".as_slice(), b"chain-der".as_slice());
        let der = encode(&key_der, &[leaf, chain], "s3cret", SALTS).expect("encode");
        assert_eq!(
            der,
            encode(&key_der, &[leaf, chain], "s3cret", SALTS).expect("again"),
            "deterministic for the same salts"
        );

        // PFX: version 3, the authSafe's content, the MAC over it.
        let (auth_safe, mac, mac_salt, iterations) = yasna::parse_der(&der, |r| {
            r.read_sequence(|r| {
                assert_eq!(r.next().read_u8()?, 3);
                let content = r.next().read_sequence(|r| {
                    assert_eq!(r.next().read_oid()?, oid(ID_DATA));
                    r.next().read_tagged(Tag::context(0), |r| r.read_bytes())
                })?;
                let (mac, salt, iterations) = r.next().read_sequence(|r| {
                    let mac = r.next().read_sequence(|r| {
                        r.next().read_sequence(|r| {
                            assert_eq!(r.next().read_oid()?, oid(SHA256));
                            r.next().read_null()
                        })?;
                        r.next().read_bytes()
                    })?;
                    Ok((mac, r.next().read_bytes()?, r.next().read_u32()?))
                })?;
                Ok((content, mac, salt, iterations))
            })
        })
        .expect("PFX");
        assert_eq!((mac_salt.as_slice(), iterations), (&[3u8; 16][..], 2048));
        let mac_key = pkcs12_kdf_mac_key("s3cret", &mac_salt);
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
            &auth_safe,
            &mac,
        )
        .expect("MAC");

        // Two data ContentInfos: the certificate bags, then the key bag.
        let contents = yasna::parse_der(&auth_safe, |r| {
            r.collect_sequence_of(|r| {
                r.read_sequence(|r| {
                    assert_eq!(r.next().read_oid()?, oid(ID_DATA));
                    r.next().read_tagged(Tag::context(0), |r| r.read_bytes())
                })
            })
        })
        .expect("AuthenticatedSafe");
        assert_eq!(contents.len(), 2);
        let certs = yasna::parse_der(&contents[0], |r| {
            r.collect_sequence_of(|r| {
                r.read_sequence(|r| {
                    assert_eq!(r.next().read_oid()?, oid(CERT_BAG));
                    let cert = r.next().read_tagged(Tag::context(0), |r| {
                        r.read_sequence(|r| {
                            assert_eq!(r.next().read_oid()?, oid(X509_CERTIFICATE));
                            r.next().read_tagged(Tag::context(0), |r| r.read_bytes())
                        })
                    })?;
                    let _attributes = r.read_optional(|r| r.read_der())?;
                    Ok(cert)
                })
            })
        })
        .expect("cert bags");
        assert_eq!(certs, vec![leaf.to_vec(), chain.to_vec()], "leaf first");

        let (salt, iv, sealed) = yasna::parse_der(&contents[1], |r| {
            r.collect_sequence_of(|r| {
                r.read_sequence(|r| {
                    assert_eq!(r.next().read_oid()?, oid(PKCS8_SHROUDED_KEY_BAG));
                    let epki = r.next().read_tagged(Tag::context(0), |r| r.read_der())?;
                    let _attributes = r.next().read_der()?;
                    Ok(epki)
                })
            })
        })
        .map(|bags| {
            assert_eq!(bags.len(), 1);
            yasna::parse_der(&bags[0], |r| {
                r.read_sequence(|r| {
                    let (salt, iv) = r.next().read_sequence(|r| {
                        assert_eq!(r.next().read_oid()?, oid(PBES2));
                        r.next().read_sequence(|r| {
                            let salt = r.next().read_sequence(|r| {
                                assert_eq!(r.next().read_oid()?, oid(PBKDF2));
                                r.next().read_sequence(|r| {
                                    let salt = r.next().read_bytes()?;
                                    assert_eq!(r.next().read_u32()?, 2048);
                                    r.next().read_der()?;
                                    Ok(salt)
                                })
                            })?;
                            let iv = r.next().read_sequence(|r| {
                                assert_eq!(r.next().read_oid()?, oid(AES_256_CBC));
                                r.next().read_bytes()
                            })?;
                            Ok((salt, iv))
                        })
                    })?;
                    Ok((salt, iv, r.next().read_bytes()?))
                })
            })
            .expect("EncryptedPrivateKeyInfo")
        })
        .expect("key bag");

        // Decrypt with the password: the PKCS#8 key comes back.
        let mut aes_key = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(2048).expect("nonzero"),
            &salt,
            b"s3cret",
            &mut aes_key,
        );
        let decrypting = aws_lc_rs::cipher::PaddedBlockDecryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(&AES_256, &aes_key).expect("aes key"),
        )
        .expect("cbc");
        let mut plain = sealed.clone();
        let iv: [u8; 16] = iv.as_slice().try_into().expect("16-byte IV");
        let got = decrypting
            .decrypt(
                &mut plain,
                aws_lc_rs::cipher::DecryptionContext::Iv128(iv.into()),
            )
            .expect("decrypt");
        assert_eq!(got, key_der.as_slice());
    }
}
