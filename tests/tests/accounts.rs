//! Room for many accounts: the pipeline's own account keeps the record keys
//! it always had; another account's records are the same keys under
//! `ACCOUNT#<id>#`, so the same user name or ticket id in two accounts never
//! meets, and serving member accounts later migrates nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use shared::names::{Account, AccountId};
use shared::ports::{Claim, IdempotencyStore, KeyLedger, KeyRecord, Stage, StatusRecord, StatusStore};
use tests::{unique, Harness};

#[tokio::test]
async fn records_of_two_accounts_never_meet_and_the_own_accounts_keys_are_unchanged() {
    let h = Harness::new().await;
    let own = shared::aws::StateTable::new(&h.sdk, &h.pipeline.env.table);
    let member = own.for_account(&Account::Member(AccountId::parse("222222222222").unwrap()));
    let (user, ticket) = (unique("ci"), unique("ONB-"));

    own.ledger().record_issued(&KeyRecord::issued(&user, "AKIAOWN", "ci@example.com", 1, None)).await.unwrap();
    member.ledger().record_issued(&KeyRecord::issued(&user, "AKIAMEMBER", "ci@example.com", 1, None)).await.unwrap();
    let keys = |l: Vec<KeyRecord>| l.into_iter().map(|k| k.access_key_id).collect::<Vec<_>>();
    assert_eq!(keys(own.ledger().keys_of(&user).await.unwrap()), ["AKIAOWN"]);
    assert_eq!(keys(member.ledger().keys_of(&user).await.unwrap()), ["AKIAMEMBER"]);

    own.status().record(&StatusRecord::new(&ticket, &user, Stage::Notified, None, 1)).await.unwrap();
    assert!(member.status().for_ticket(&ticket).await.unwrap().is_empty(), "another account's ticket seen");
    assert_eq!(own.status().for_ticket(&ticket).await.unwrap().len(), 1);

    let claim = |t: &shared::aws::StateTable| {
        let store = t.idempotency();
        let key = format!("credentials#{ticket}#{user}");
        async move { store.claim(&key, "h", 1, 100, 1000).await.unwrap() }
    };
    assert_eq!(claim(&own).await, Claim::Acquired);
    assert_eq!(claim(&member).await, Claim::Acquired, "one account's work blocked the other's");

    // The own account's items are where they always were.
    let dynamo = aws_sdk_dynamodb::Client::new(&h.sdk);
    let item = dynamo
        .get_item()
        .table_name(&h.pipeline.env.table)
        .key("pk", AttributeValue::S(format!("KEYS#{user}")))
        .key("sk", AttributeValue::S("KEY#AKIAOWN".into()))
        .send()
        .await
        .unwrap();
    assert!(item.item.is_some(), "the own account's ledger moved");
    let item = dynamo
        .get_item()
        .table_name(&h.pipeline.env.table)
        .key("pk", AttributeValue::S(format!("ACCOUNT#222222222222#KEYS#{user}")))
        .key("sk", AttributeValue::S("KEY#AKIAMEMBER".into()))
        .send()
        .await
        .unwrap();
    assert!(item.item.is_some(), "the member account's ledger is not under its account");
}
