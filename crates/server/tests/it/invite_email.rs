//! Invitation e-mails over SMTP (issue 6, lifecycle 5) against a real SMTP server (aiosmtpd,
//! `keybridge_testkit::smtp`): one user and in bulk, STARTTLS with a test CA and plain SMTP
//! to a loopback relay, a refused recipient's reason, and no e-mail sent twice when a bulk
//! job runs again after a crash.

use std::path::{Path, PathBuf};

use keybridge_config::{SmtpConfig, SmtpSecurity};
use keybridge_testkit::Backend;
use keybridge_testkit::smtp::{ReceivedMail, SmtpSink};
use reqwest::Method;
use serde_json::json;

use crate::bulk_invites::{as_if_crashed, members, post_csv, results, wait_until_run_again};
use crate::provisioning::integration;
use crate::support::{self, Harness, assert_error};

fn smtp(port: u16, security: SmtpSecurity, ca_file: Option<PathBuf>) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        security,
        username: None,
        password: None,
        from: "keybridge <keybridge@contoso.com>".to_owned(),
        reply_to: Some("IT Help Desk <help@contoso.com>".to_owned()),
        ca_file,
    }
}

/// A certificate for 127.0.0.1 from a fresh test CA: (chain file, key file, CA file).
fn test_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let material =
        keybridge_server::tls::TlsMaterial::load(None, None, dir, None).expect("test certificate");
    let chain = dir.join("smtp-chain.pem");
    let key = dir.join("smtp-key.pem");
    std::fs::write(&chain, &material.cert_chain_pem).expect("chain");
    std::fs::write(&key, &material.key_pem).expect("key");
    (chain, key, material.ca_file.expect("CA file"))
}

/// The message with its folded header lines joined.
fn unfolded(mail: &ReceivedMail) -> String {
    mail.data.replace("\r\n ", " ").replace("\n ", " ")
}

/// The invitation link in a message's text part.
fn link_in(mail: &ReceivedMail, h: &Harness) -> String {
    let text = unfolded(mail);
    let base = h.url("/invite/");
    let start = text
        .find(&base)
        .expect("the message holds the invitation link");
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .expect("link")
        .to_owned()
}

/// Invites one user through the API; the answer must say it was e-mailed.
async fn invite(h: &Harness, user_id: &str) -> serde_json::Value {
    let (status, invited) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{user_id}/invites"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    assert_eq!(invited["delivery"], "emailed");
    invited
}

async fn set_email(h: &Harness, user_id: &str, email: &str) {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(email)
        .bind(user_id)
        .execute(h.store.raw_pool())
        .await
        .expect("email set");
}

async fn invitations_are_emailed_over_starttls(backend: Backend) {
    let certs = tempfile::tempdir().expect("dir");
    let (chain, key, ca) = test_certificate(certs.path());
    let sink = SmtpSink::start_tls(&chain, &key);
    let h =
        support::start_with_smtp(backend, smtp(sink.port, SmtpSecurity::StartTls, Some(ca))).await;
    let integration_id = integration(&h).await;
    let users = members(&h, &integration_id, 4).await;
    let ada = &users[0];
    let ada_user = h.store.users().get(&ada.0).await.expect("user");
    let address = ada_user.email.clone().unwrap_or(ada_user.upn.clone());

    // One user: the answer says the e-mail went out and to whom, and never shows the link.
    let invited = invite(&h, &ada.0).await;
    assert_eq!(invited["sent_to"], address.as_str());
    assert!(invited.get("link").is_none(), "{invited}");
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.tls, "the session was upgraded with STARTTLS");
    assert_eq!(mail.rcpt_tos, vec![address.clone()]);
    assert_eq!(mail.mail_from, "keybridge@contoso.com");
    let text = unfolded(mail);
    assert!(
        text.contains("Subject: Contoso Passkeys: set up your passkey with keybridge"),
        "{text}"
    );
    assert!(
        text.contains("Reply-To: \"IT Help Desk\" <help@contoso.com>")
            || text.contains("Reply-To: IT Help Desk <help@contoso.com>"),
        "{text}"
    );
    assert!(text.contains("Contoso Passkeys invites you"), "{text}");
    assert!(text.contains("Content-Type: text/html"), "{text}");
    // The link in the e-mail opens the Device Manager page.
    let link = link_in(mail, &h);
    let page = h.http.get(&link).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let body = page.text().await.expect("body");
    assert!(body.contains("<h1>Pair your phone</h1>"), "{body}");
    assert!(body.contains(&ada_user.upn), "{body}");
    // Audited without the link.
    let events = h
        .store
        .audit()
        .list(&Default::default(), None, 100)
        .await
        .expect("audit");
    let sent: Vec<_> = events
        .iter()
        .filter(|e| e.action == "user.invite.email")
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(
        !sent[0].details.to_string().contains("/invite/"),
        "{:?}",
        sent[0].details
    );

    // A refused recipient: a clear reason, and the invitation itself stays open.
    let bob = &users[1];
    set_email(&h, &bob.0, "refused.bob@contoso.com").await;
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/invites", bob.0),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, 502, "email_failed", None);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("refused the e-mail to refused.bob@contoso.com")
            && message.contains("550")
            && message.contains("invite the user again"),
        "{message}"
    );
    let (status, open) = h
        .call(
            Method::GET,
            &format!("/api/v1/users/{}/invites", bob.0),
            None,
        )
        .await;
    assert_eq!(status, 200, "{open}");
    assert_eq!(open[0]["status"], "open", "{open}");

    // In bulk: each user's e-mail is sent once, a refusal is recorded with its reason.
    let (carol, dave) = (&users[2], &users[3]);
    set_email(&h, &dave.0, "refused.dave@contoso.com").await;
    let csv = format!("email\n{}\n{}\n", carol.1, dave.1);
    let (status, queued) = post_csv(&h, &integration_id, &csv).await;
    assert_eq!(status, 202, "{queued}");
    let job_id = queued["job_id"].as_str().expect("job").to_owned();
    let job = h.wait_for_job(&job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let got = results(&h, &job_id).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["outcome"], "invited");
    assert_eq!(got[0]["email"], "sent", "{got:?}");
    assert_eq!(got[1]["email"], "failed", "{got:?}");
    let reason = got[1]["email_error"].as_str().expect("reason");
    assert!(
        reason.contains("refused the e-mail to refused.dave@contoso.com")
            && reason.contains("recipient address rejected"),
        "{reason}"
    );
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2);
    let carol_user = h.store.users().get(&carol.0).await.expect("user");
    let carol_address = carol_user.email.clone().unwrap_or(carol_user.upn.clone());
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.rcpt_tos == [carol_address.clone()])
            .count(),
        1
    );

    // Run again as after a crash, once with a send left half-way: nothing is sent twice,
    // and the half-way one is reported as uncertain instead of being sent again.
    as_if_crashed(&h, &job_id).await;
    wait_until_run_again(&h, &job_id).await;
    assert_eq!(results(&h, &job_id).await, got);
    sqlx::query(
        "UPDATE bulk_invite_results SET email = 'sending' WHERE job_id = $1 AND email = 'sent'",
    )
    .bind(&job_id)
    .execute(h.store.raw_pool())
    .await
    .expect("half-way send");
    as_if_crashed(&h, &job_id).await;
    wait_until_run_again(&h, &job_id).await;
    let again = results(&h, &job_id).await;
    assert_eq!(again[0]["email"], "uncertain", "{again:?}");
    assert!(
        again[0]["email_error"]
            .as_str()
            .is_some_and(|e| e.contains("not sent twice")),
        "{again:?}"
    );
    assert_eq!(sink.messages().len(), 2, "no e-mail was sent twice");
    h.stop().await;
}

async fn plain_smtp_to_a_loopback_relay(backend: Backend) {
    let sink = SmtpSink::start();
    let h = support::start_with_smtp(backend, smtp(sink.port, SmtpSecurity::None, None)).await;
    let integration_id = integration(&h).await;
    let users = members(&h, &integration_id, 2).await;
    let ada = &users[0];
    invite(&h, &ada.0).await;
    let mails = sink.wait_for(1);
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].tls);
    let page = h
        .http
        .get(link_in(&mails[0], &h))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);

    // A greylisting relay (451 the first time): the single invite tries again and the admin
    // gets the e-mail sent, not an error.
    let grey = &users[1];
    set_email(&h, &grey.0, "busy.grey@contoso.com").await;
    let invited = invite(&h, &grey.0).await;
    assert_eq!(invited["sent_to"], "busy.grey@contoso.com", "{invited}");
    let mails = sink.wait_for(2);
    assert_eq!(mails.len(), 2, "one e-mail each");
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.rcpt_tos == ["busy.grey@contoso.com"])
            .count(),
        1,
        "{mails:?}"
    );
    h.stop().await;
}

async fn an_unreachable_smtp_server_makes_the_bulk_job_retry(backend: Backend) {
    // The server is told about an SMTP relay that is not up yet.
    let port = keybridge_testkit::smtp::free_port();
    let h = support::start_with_smtp(backend, smtp(port, SmtpSecurity::None, None)).await;
    let integration_id = integration(&h).await;
    let ada = &members(&h, &integration_id, 1).await[0];
    let (status, queued) = post_csv(&h, &integration_id, &format!("email\n{}\n", ada.1)).await;
    assert_eq!(status, 202, "{queued}");
    let job_id = queued["job_id"].as_str().expect("job").to_owned();
    // The attempt fails with the reason, the invite is kept, and the job waits to retry.
    let mut waiting = None;
    for _ in 0..600 {
        let job = h.store.jobs().get(&job_id).await.expect("job");
        if job.last_error.is_some() {
            waiting = Some(job);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let job = waiting.expect("the first attempt failed");
    let error = job.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("1 invitation e-mail(s) could not be sent yet")
            && error.contains(&format!("127.0.0.1:{port} is unreachable")),
        "{error}"
    );
    assert_ne!(job.state.as_str(), "dead", "{job:?}");
    let pending = results(&h, &job_id).await;
    assert_eq!(pending[0]["outcome"], "invited", "{pending:?}");
    assert!(
        pending[0].get("email").is_none(),
        "not sent yet: {pending:?}"
    );
    // The relay comes up: the retry sends the e-mail, once, for the invite already issued.
    let sink = SmtpSink::start_on(port);
    let done = h.wait_for_job(&job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let sent = results(&h, &job_id).await;
    assert_eq!(sent[0]["email"], "sent", "{sent:?}");
    assert_eq!(sent[0]["invite_id"], pending[0]["invite_id"]);
    assert_eq!(sink.wait_for(1).len(), 1);
    assert_eq!(
        h.store
            .invites()
            .list_for_user(&ada.0)
            .await
            .expect("invites")
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_smtp_server_makes_the_bulk_job_retry_on_sqlite() {
    an_unreachable_smtp_server_makes_the_bulk_job_retry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_smtp_server_makes_the_bulk_job_retry_on_postgres() {
    an_unreachable_smtp_server_makes_the_bulk_job_retry(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_emailed_over_starttls_on_sqlite() {
    invitations_are_emailed_over_starttls(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_emailed_over_starttls_on_postgres() {
    invitations_are_emailed_over_starttls(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_to_a_loopback_relay_on_sqlite() {
    plain_smtp_to_a_loopback_relay(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_to_a_loopback_relay_on_postgres() {
    plain_smtp_to_a_loopback_relay(Backend::Postgres).await;
}
