//! The invitation e-mail: a plain-text part and an HTML part saying who invites, to what,
//! until when, and what to do. Every field that comes from Entra or an admin (names,
//! addresses) is escaped in the HTML part.

use keybridge_store::Timestamp;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};

/// One invitation to send.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// The recipient's address.
    pub to: &'a str,
    /// The recipient's name as Entra has it (may be empty).
    pub display_name: &'a str,
    /// The organisation's integration (application) name.
    pub organisation: &'a str,
    /// The single-use link to the Device Manager page.
    pub link: &'a str,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A header-safe single line: control characters (a CR/LF could start a new header) dropped.
fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn expiry_text(at: Timestamp) -> String {
    let t = at.to_offset_date_time();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

impl Invitation<'_> {
    /// The subject line.
    pub fn subject(&self) -> String {
        format!(
            "{}: set up your passkey with keybridge",
            one_line(self.organisation)
        )
    }

    fn greeting(&self) -> String {
        let name = one_line(self.display_name.trim());
        if name.is_empty() {
            "Hello,".to_owned()
        } else {
            format!("Hello {name},")
        }
    }

    /// The plain-text part.
    pub fn text(&self) -> String {
        format!(
            "{greeting}\n\n\
             {org} invites you to sign in with a passkey on your phone, through keybridge.\n\n\
             Open this link to pair your phone:\n{link}\n\n\
             The page shows a QR code: scan it with the keybridge app on your phone (or type the \
             short code shown under it) and confirm on the phone. The link works once and \
             expires on {expires}.\n\n\
             If you did not expect this e-mail, ignore it: the link stops working on its own. \
             If it has expired, ask your administrator for a new invitation.\n",
            greeting = self.greeting(),
            org = one_line(self.organisation),
            link = self.link,
            expires = expiry_text(self.expires_at),
        )
    }

    /// The HTML part.
    pub fn html(&self) -> String {
        let link = escape(self.link);
        format!(
            "<!DOCTYPE html>\n<html><body>\n\
             <p>{greeting}</p>\n\
             <p>{org} invites you to sign in with a passkey on your phone, through keybridge.</p>\n\
             <p><a href=\"{link}\">Pair your phone</a></p>\n\
             <p>Or copy this link into your browser: {link}</p>\n\
             <p>The page shows a QR code: scan it with the keybridge app on your phone (or type \
             the short code shown under it) and confirm on the phone. The link works once and \
             expires on {expires}.</p>\n\
             <p>If you did not expect this e-mail, ignore it: the link stops working on its own. \
             If it has expired, ask your administrator for a new invitation.</p>\n\
             </body></html>\n",
            greeting = escape(&self.greeting()),
            org = escape(&one_line(self.organisation)),
            expires = expiry_text(self.expires_at),
        )
    }

    /// The whole message.
    pub(super) fn message(
        &self,
        from: Mailbox,
        reply_to: Option<Mailbox>,
        to: Mailbox,
    ) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder().from(from).to(to).subject(self.subject());
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to);
        }
        builder.multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(self.text()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(self.html()),
                ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation<'a>(name: &'a str, org: &'a str) -> Invitation<'a> {
        Invitation {
            to: "ada@example.com",
            display_name: name,
            organisation: org,
            link: "https://kb.example.com/invite/abc?x=1&y=2",
            expires_at: Timestamp::from_unix_millis(1_800_000_000_000),
        }
    }

    #[test]
    fn html_escapes_every_user_controlled_field() {
        let inv = invitation("<script>alert(1)</script>", "Contoso & \"Partners\"");
        let html = inv.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"));
        assert!(html.contains("Contoso &amp; &quot;Partners&quot; invites you"));
        assert!(html.contains("href=\"https://kb.example.com/invite/abc?x=1&amp;y=2\""));
    }

    #[test]
    fn text_names_the_organisation_the_expiry_and_the_link() {
        let inv = invitation("Ada Lovelace", "Contoso");
        let text = inv.text();
        assert!(text.starts_with("Hello Ada Lovelace,"));
        assert!(text.contains("Contoso invites you"));
        assert!(text.contains("https://kb.example.com/invite/abc?x=1&y=2"));
        assert!(text.contains("expires on 2027-01-15 08:00 UTC"), "{text}");
        assert_eq!(inv.subject(), "Contoso: set up your passkey with keybridge");
    }

    #[test]
    fn a_name_cannot_break_into_the_headers() {
        let inv = invitation("Eve\r\nBcc: all@example.com", "Org\r\nX-Evil: 1");
        assert_eq!(
            inv.subject(),
            "OrgX-Evil: 1: set up your passkey with keybridge"
        );
        assert!(inv.text().starts_with("Hello EveBcc: all@example.com,"));
    }
}
