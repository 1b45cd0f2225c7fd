//! `auth.akash.keySource: chain`: public keys from the Cosmos auth module over REST, against an
//! in-process fake of that API (a chain node cannot run here) in the shapes a Cosmos SDK node
//! answers with: BaseAccount, a vesting account, an account type only `account_info` explains,
//! a null key, an ed25519 key, 404 and 500.
//!
//! Keys found are kept for good: in memory, and in certfleet's store across a restart (no second
//! request); a chain outage after that changes nothing for them. Failures are retried with
//! back-off, and an address that failed is not asked again until its back-off ends.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use certfleet::akash::address::compressed;
use certfleet::akash::{Address, ChainKeys, ChainOptions, MemoryOnly, Rejection};
use k256::ecdsa::SigningKey;
use serde_json::json;

use crate::common;
use crate::common::akash as sdk;
use common::service::{Service, base_yaml, json};
use common::{Pebble, PebbleOptions};
use sdk::{
    Account, CosmosFake, WALLET_A, WALLET_B, WALLET_C, WALLET_D, akash_yaml, expect_error,
    get_cert, mint, now, post_cert,
};

/// A key of the tests and its address and base64 public key, as the chain would show them.
fn wallet(seed: u8) -> (Address, String) {
    let key = SigningKey::from_slice(&[seed; 32]).expect("a valid scalar");
    let public = compressed(key.verifying_key());
    (
        Address::from_compressed_key(&public),
        STANDARD.encode(public),
    )
}

fn chain(fake: &CosmosFake) -> ChainKeys {
    let mut options = ChainOptions::new(&fake.url);
    options.first_retry = Duration::from_millis(10);
    options.first_backoff = Duration::from_secs(1);
    options.max_backoff = Duration::from_secs(2);
    ChainKeys::new(options, Arc::new(MemoryOnly)).expect("a chain key source")
}

fn invalid(result: Result<k256::ecdsa::VerifyingKey, Rejection>) -> String {
    match result {
        Err(Rejection::Invalid(m)) => m,
        other => panic!("expected an invalid answer, got {other:?}"),
    }
}

fn unavailable(result: Result<k256::ecdsa::VerifyingKey, Rejection>) -> String {
    match result {
        Err(Rejection::Unavailable(m)) => m,
        other => panic!("expected an unavailable answer, got {other:?}"),
    }
}

#[tokio::test]
async fn every_account_shape_and_failure_of_the_chain() {
    let fake = CosmosFake::start().await;
    let keys = chain(&fake);
    let [base, vesting, exotic, null, missing, ed25519, lying, flaky] =
        [1, 2, 3, 4, 5, 6, 7, 8].map(wallet);
    fake.set(base.0.as_str(), Account::Base(base.1.clone()));
    fake.set(vesting.0.as_str(), Account::Vesting(vesting.1.clone()));
    fake.set(exotic.0.as_str(), Account::Exotic(exotic.1.clone()));
    fake.set(null.0.as_str(), Account::NullKey);
    fake.set(ed25519.0.as_str(), Account::Ed25519);
    // A key that is not the account's: a wrong or tampered endpoint.
    fake.set(lying.0.as_str(), Account::Base(base.1.clone()));
    fake.set(flaky.0.as_str(), Account::Base(flaky.1.clone()));

    for (who, expected_requests) in [(&base, 1), (&vesting, 1), (&exotic, 2)] {
        let key = keys.key(&who.0).await.expect("a key");
        assert_eq!(STANDARD.encode(compressed(&key)), who.1);
        assert_eq!(
            fake.requests_for(who.0.as_str()),
            expected_requests,
            "{}",
            who.0
        );
        // Kept in memory: no second request.
        keys.key(&who.0).await.expect("a key");
        assert_eq!(fake.requests_for(who.0.as_str()), expected_requests);
    }
    assert!(invalid(keys.key(&null.0).await).contains("never sent a transaction"));
    assert!(invalid(keys.key(&missing.0).await).contains("no account on chain"));
    assert!(invalid(keys.key(&ed25519.0).await).contains("not secp256k1"));
    assert!(unavailable(keys.key(&lying.0).await).contains("does not derive"));
    assert_eq!(fake.requests_for(lying.0.as_str()), 3, "retried");
    // Backing off: the same answers without asking the chain.
    let asked = fake.requests().len();
    let again = invalid(keys.key(&null.0).await);
    assert!(again.contains("never sent a transaction") && again.contains("asked again in"));
    assert!(invalid(keys.key(&missing.0).await).contains("no account on chain"));
    assert_eq!(fake.requests().len(), asked, "no request while backing off");

    // An outage: failures are retried, then 503; known keys are unaffected.
    fake.set_down(true);
    let message = unavailable(keys.key(&flaky.0).await);
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(fake.requests_for(flaky.0.as_str()), 3, "3 attempts");
    unavailable(keys.key(&flaky.0).await);
    assert_eq!(fake.requests_for(flaky.0.as_str()), 3, "backing off");
    for who in [&base, &vesting, &exotic] {
        keys.key(&who.0)
            .await
            .expect("known keys survive the outage");
    }
    // The chain is back and the back-off over: the key is found.
    fake.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    keys.key(&flaky.0)
        .await
        .expect("found once the chain answers");
    assert_eq!(fake.requests_for(flaky.0.as_str()), 4);
    assert_eq!(
        keys.requests(),
        u64::try_from(fake.requests().len()).expect("small")
    );
}

#[tokio::test]
async fn concurrent_tokens_of_a_new_address_share_one_lookup() {
    let fake = CosmosFake::start().await;
    let keys = Arc::new(chain(&fake));
    let (address, key) = wallet(9);
    fake.set(address.as_str(), Account::Base(key));
    let lookups: Vec<_> = (0..16)
        .map(|_| {
            let keys = keys.clone();
            let address = address.clone();
            tokio::spawn(async move { keys.key(&address).await })
        })
        .collect();
    for lookup in lookups {
        lookup.await.expect("the task").expect("a key");
    }
    assert_eq!(fake.requests_for(address.as_str()), 1);
}

#[tokio::test]
async fn keys_persist_across_a_restart_and_survive_an_outage() {
    let now = now();
    let tokens = json!([
        {"name": "a1", "wallet": "a", "alg": "ES256K", "exp": now + 600},
        {"name": "a2", "wallet": "a", "alg": "ES256KADR36", "exp": now + 600, "leases": {"access": "scoped", "scope": ["status"]}},
        {"name": "b", "wallet": "b", "alg": "ES256K", "exp": now + 600},
        {"name": "c", "wallet": "c", "alg": "ES256KADR36", "exp": now + 600},
        {"name": "d", "wallet": "d", "alg": "ES256K", "exp": now + 600},
    ]);
    let minted = mint(&json!({
        "wallets": {"a": WALLET_A, "b": WALLET_B, "c": WALLET_C, "d": WALLET_D},
        "tokens": tokens
    }));
    let fake = CosmosFake::start().await;
    fake.set(
        minted.address("a"),
        Account::Base(minted.pubkey("a").to_owned()),
    );
    fake.set(
        minted.address("b"),
        Account::Vesting(minted.pubkey("b").to_owned()),
    );
    fake.set(minted.address("c"), Account::NullKey);
    // d: no account at all (404).
    let mut principals = String::from("principals:\n");
    for w in ["a", "b", "c", "d"] {
        principals.push_str(&format!(
            "  - address: {}\n    domains: [\"*.chain.example.test\"]\n",
            minted.address(w)
        ));
    }
    let chain_section = akash_yaml(&format!(
        "keySource: chain\nrestUrl: {}\n{principals}",
        fake.url
    ));

    let pebble = Pebble::start(PebbleOptions::default()).await;
    let data = tempfile::tempdir().expect("a data directory");
    let db_url = format!("sqlite://{}", data.path().join("certfleet.db").display());
    let service = start_on(&pebble, &db_url, &chain_section).await;
    let client = service.client().clone();
    let names = ["www.chain.example.test"];
    let response = post_cert(&client, &service.base, minted.token("a1"), &names).await;
    assert_eq!(response.status(), 200);
    assert_eq!(fake.requests_for(minted.address("a")), 1);
    assert_eq!(service.count_rows("akash_pubkeys").await, 1);
    // A vesting account's key, looked up and stored too.
    let response = get_cert(&client, &service.base, minted.token("b"), &names).await;
    assert_eq!(response.status(), 200);
    // No key on chain yet (never sent a transaction), no account at all: 401 with the reason.
    let c = minted.token("c");
    let body = expect_error(
        get_cert(&client, &service.base, c, &names).await,
        401,
        "unauthorized",
        c,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("recover"),
        "{body}"
    );
    let d = minted.token("d");
    let body = expect_error(
        get_cert(&client, &service.base, d, &names).await,
        401,
        "unauthorized",
        d,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no account on chain"),
        "{body}"
    );
    assert_eq!(service.count_rows("akash_pubkeys").await, 2);
    service.stop().await;

    // Restarted on the same database, with the chain down: the stored keys are used, the chain
    // is not asked.
    fake.set_down(true);
    let asked = fake.requests().len();
    let service = start_on(&pebble, &db_url, &chain_section).await;
    for token in ["a2", "b"] {
        let response = get_cert(&client, &service.base, minted.token(token), &names).await;
        assert_eq!(response.status(), 200, "{token}");
        assert_eq!(json(response).await["cached"], true);
    }
    assert_eq!(fake.requests().len(), asked, "no request after the restart");
    // An address not yet known, during the outage: 503 with Retry-After.
    let response = get_cert(&client, &service.base, d, &names).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, 503, "auth_unavailable", d).await;
    service.stop().await;

    // keySource recover needs no chain and accepts the wallet that never sent a transaction.
    let recover = akash_yaml(&principals);
    let service = start_on(&pebble, &db_url, &recover).await;
    let response = get_cert(&client, &service.base, c, &names).await;
    assert_eq!(response.status(), 200);
    service.stop().await;
    assert_eq!(pebble.issued_count(), 1);
}

/// certfleet on the database at `db_url` (kept by the caller across restarts).
async fn start_on(pebble: &Pebble, db_url: &str, akash_section: &str) -> Service {
    let yaml = base_yaml(pebble, db_url, "30s") + akash_section;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    Service::start_yaml(&yaml, scratch, db_url.to_owned()).await
}
