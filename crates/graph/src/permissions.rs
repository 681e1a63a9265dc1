//! placeholder
pub(crate) const GRANT_ADVICE: &str = "grant admin consent to the app registration in the Entra admin center > App registrations > API permissions";
