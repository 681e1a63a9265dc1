//! A stored user as `keybridge-core`'s [`UserFacts`], so that core decides transitions,
//! warnings and groups.

use keybridge_core::{StoredUserFacts, UserFacts, UserState};
use keybridge_store::{Store, StoreError, Timestamp, User};

/// The facts of `user`. The phone and passkey counts follow from the state (one step each);
/// `invited` is whether an invitation is open. `None` when the stored row contradicts itself.
pub fn user_facts(user: &User, invited: bool) -> Option<UserFacts> {
    let (paired_phones, entra_passkeys) = match user.state {
        UserState::Pending => (0, 0),
        UserState::PairedWithKeybridge => (1, 0),
        UserState::PairedWithEntra => (1, 1),
    };
    UserFacts::from_stored(StoredUserFacts {
        state: user.state,
        unpaired: user.unpaired && user.state == UserState::Pending,
        entra_status: user.entra_status,
        invited: invited && user.state == UserState::Pending,
        paired_phones,
        entra_passkeys,
    })
    .ok()
}

/// Whether the user has an invitation that is neither used, revoked nor expired.
pub async fn has_open_invite(
    store: &Store,
    user_id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(store
        .invites()
        .list_for_user(user_id)
        .await?
        .iter()
        .any(|i| i.used_at.is_none() && i.revoked_at.is_none() && i.expires_at > now))
}
