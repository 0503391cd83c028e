//! Fuzzing of access-token verification (seeded by `PROPTEST_RNG_SEED`,
//! `PROPTEST_CASES` cases; failures kept in `proptest-regressions/`): a
//! token verifies exactly as signed; any changed character, another key's
//! signature, or arbitrary text is refused without a panic.

use std::sync::LazyLock;
use std::time::Duration;

use guardline_runtime::token::{Claims, StaticKeys, TokenSigner, TokenVerifier};
use proptest::prelude::*;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));

struct Keys {
    signer: TokenSigner,
    stranger: TokenSigner,
    verifier: TokenVerifier,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let signer = TokenSigner::generate("k1").expect("key");
    let stranger = TokenSigner::generate("k1").expect("another key, same id");
    let verifier = TokenVerifier::new(StaticKeys(vec![signer.verification_key()]));
    Keys { signer, stranger, verifier }
});

fn claims() -> impl Strategy<Value = Claims> {
    ("[a-z0-9-]{1,20}", "\\PC{1,20}", prop::collection::vec("[a-z_]{1,12}", 0..4))
        .prop_map(|(t, u, roles)| Claims::new(&t, &u, roles, vec![], Duration::from_secs(300)))
}

proptest! {
    #[test]
    fn a_token_verifies_as_signed_and_a_changed_character_never(c in claims(), at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=-]") {
        let token = KEYS.signer.sign(&c).expect("sign");
        let got = RT.block_on(KEYS.verifier.verify(&token)).expect("verifies");
        prop_assert_eq!((&got.tenant, &got.sub, &got.roles), (&c.tenant, &c.sub, &c.roles));
        let i = at.index(token.len());
        let mut changed = token.clone();
        changed.replace_range(i..=i, &with);
        if changed != token {
            prop_assert!(RT.block_on(KEYS.verifier.verify(&changed)).is_err(), "changed at {}", i);
        }
        let forged = KEYS.stranger.sign(&c).expect("sign");
        prop_assert!(RT.block_on(KEYS.verifier.verify(&forged)).is_err(), "another key with the same id");
    }

    #[test]
    fn arbitrary_text_is_refused(text in "\\PC{0,200}", parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 0..5)) {
        prop_assert!(RT.block_on(KEYS.verifier.verify(&text)).is_err());
        prop_assert!(RT.block_on(KEYS.verifier.verify(&parts.join("."))).is_err());
    }
}
