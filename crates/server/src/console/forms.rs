//! Inline form errors: a service's refusal ([`ApiError`]) turned into messages shown next to
//! the fields they are about.

use std::collections::BTreeMap;

use crate::error::ApiError;

use super::error::ConsoleError;

/// Messages by form field (`name`, `tenant_id`, `domains`, ...); `form` holds messages about
/// the form as a whole.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    by_field: BTreeMap<String, Vec<String>>,
}

impl FieldErrors {
    /// No errors.
    pub fn none() -> FieldErrors {
        FieldErrors::default()
    }

    /// The inline errors of a refusal; a server failure (5xx) is not a form error and is
    /// returned as the console error to show instead. `fields` are the form's own fields: a
    /// refusal about another input is shown for the whole form.
    pub fn from_api(error: ApiError, fields: &[&str]) -> Result<FieldErrors, ConsoleError> {
        if error.status().is_server_error() {
            return Err(ConsoleError::Internal(error.to_string()));
        }
        let mut errors = FieldErrors::default();
        let place = |field: Option<&str>| -> String {
            let base = field.map(|f| f.split('[').next().unwrap_or(f));
            match base {
                Some(base) if fields.contains(&base) => base.to_owned(),
                _ => "form".to_owned(),
            }
        };
        if error.details().is_empty() {
            // The API prefixes a field's message with its name; next to the field that is noise.
            let message = error
                .field()
                .and_then(|f| error.message().strip_prefix(&format!("{f}: ")))
                .unwrap_or(error.message())
                .to_owned();
            errors.add(&place(error.field()), &message);
        } else {
            for problem in error.details() {
                errors.add(&place(Some(&problem.field)), &problem.message);
            }
        }
        Ok(errors)
    }

    /// Adds a message for `field`.
    pub fn add(&mut self, field: &str, message: &str) {
        self.by_field
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    }

    /// The message for `field` (several joined), if any.
    pub fn get(&self, field: &str) -> Option<String> {
        self.by_field.get(field).map(|m| m.join(" "))
    }

    /// The messages for `field`, one per problem.
    pub fn all(&self, field: &str) -> Vec<String> {
        self.by_field.get(field).cloned().unwrap_or_default()
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldProblem;

    #[test]
    fn refusals_land_on_their_fields() {
        let error = ApiError::invalid("domains", "2 entries are not domains").with_details(vec![
            FieldProblem {
                field: "domains[0]".into(),
                message: "\"x y\" is not a domain".into(),
            },
            FieldProblem {
                field: "domains[3]".into(),
                message: "\"http://a\" has a scheme".into(),
            },
        ]);
        let errors = FieldErrors::from_api(error, &["domains"]).unwrap();
        assert_eq!(errors.all("domains").len(), 2);
        let errors =
            FieldErrors::from_api(ApiError::invalid("credential", "give one"), &["name"]).unwrap();
        assert_eq!(errors.get("form").as_deref(), Some("give one"));
        assert!(FieldErrors::from_api(ApiError::internal("db down"), &["name"]).is_err());
    }
}
