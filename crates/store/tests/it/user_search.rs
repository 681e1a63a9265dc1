//! User search gives exactly the users whose UPN, e-mail or display name holds the term
//! (case-insensitively, wildcards taken literally), whichever way the database finds them: on
//! SQLite a term of three characters or more goes through the trigram index unless it is common,
//! shorter ones scan.

use keybridge_store::{DirectoryUser, Store, UserQuery, UserSort};

use crate::common::{directory_user, integration};

fn person(oid: &str, upn: &str, email: Option<&str>, name: &str) -> DirectoryUser {
    DirectoryUser {
        entra_object_id: oid.into(),
        upn: upn.into(),
        email: email.map(str::to_owned),
        display_name: name.into(),
        account_enabled: true,
    }
}

fn tricky_people() -> Vec<DirectoryUser> {
    vec![
        person(
            "t1",
            "amelie@contoso.example",
            Some("Amelie.Zoe@Mail.example"),
            "Ämélie Zoë",
        ),
        person("t2", "strasse@contoso.example", None, "Hans Straße"),
        person("t3", "offer@contoso.example", None, "50% off_team"),
        person("t4", "percent@contoso.example", None, "5000 off team"),
        person("t5", "back@contoso.example", None, "back\\slash"),
        person("t6", "quote@contoso.example", None, "the \"q\" name"),
        person(
            "t7",
            "oneil@contoso.example",
            Some("o'neil@mail.example"),
            "Pat O'Neil",
        ),
        person("t8", "ipek@contoso.example", None, "İpek Yılmaz"),
        person("t9", "emoji@contoso.example", None, "Smiley 😀 Face"),
        person("t10", "UPPER.Case@Contoso.example", None, "MIXED Case"),
        person("t11", "under_score@contoso.example", None, "Under Score"),
        person("t12", "xyz@contoso.example", None, "abc xbcd"),
    ]
}

/// Every page of a list, as ids.
async fn all_pages(store: &Store, mut query: UserQuery) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = store.users().list(&query).await.unwrap();
        ids.extend(page.items.into_iter().map(|i| i.user.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
}

/// Whether a user is a hit for `term` by the rule the list promises.
fn holds(user: &DirectoryUser, term: &str) -> bool {
    let text = format!(
        "{} {} {}",
        user.upn,
        user.email.as_deref().unwrap_or(""),
        user.display_name
    )
    .to_lowercase();
    text.contains(&term.trim().to_lowercase())
}

async fn search_finds_exactly_the_users_holding_the_term(store: Store) {
    let integ = integration(&store, "Contoso").await;
    let other = integration(&store, "Other").await;
    let mut people = tricky_people();
    // Enough ordinary users that "contoso" is too common for the index on SQLite.
    people.extend((0..2_100).map(directory_user));
    store
        .users()
        .upsert_from_directory(&integ, &people)
        .await
        .unwrap();
    // Another integration's users never show up.
    store
        .users()
        .upsert_from_directory(&other, &tricky_people())
        .await
        .unwrap();

    let terms = [
        "ämélie",
        "ÄMÉLIE",
        "zoë",
        "straße",
        "STRASSE",
        "50%",
        "%",
        "0%",
        "_",
        "off_",
        "f_t",
        "r_s",
        "\\",
        "back\\s",
        "\"q\"",
        "\"",
        "o'neil",
        "  pat o'  ",
        "i̇pek",
        "İpek",
        "yıl",
        "😀",
        "y 😀 f",
        "upper.case",
        "MIXED c",
        "abcd",
        "bcd",
        "abc x",
        "e",
        "ab",
        "zz",
        "user01",
        "user0209",
        "contoso",
        "@mail.example",
        "nobody-has-this",
        "user00150@",
    ];
    for term in terms {
        for sort in [UserSort::Upn, UserSort::DisplayName] {
            let mut query = UserQuery::new(&integ, None);
            query.search = Some(term.to_owned());
            query.sort = sort;
            query.limit = 500;
            let found = all_pages(&store, query).await;
            let mut expected = Vec::new();
            for user in people.iter().filter(|u| holds(u, term)) {
                expected.push(
                    store
                        .users()
                        .find_by_object_id(&integ, &user.entra_object_id)
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
            match sort {
                UserSort::Upn => expected.sort_by(|a, b| (&a.upn, &a.id).cmp(&(&b.upn, &b.id))),
                _ => expected.sort_by(|a, b| {
                    (a.display_name.to_lowercase(), &a.id)
                        .cmp(&(b.display_name.to_lowercase(), &b.id))
                }),
            }
            let expected: Vec<String> = expected.into_iter().map(|u| u.id).collect();
            assert_eq!(found, expected, "term {term:?}, {sort:?}");
        }
    }
}

/// The index follows renames and deletions.
async fn search_follows_renames_and_deletes(store: Store) {
    let integ = integration(&store, "Contoso").await;
    store
        .users()
        .upsert_from_directory(&integ, &tricky_people())
        .await
        .unwrap();
    let search = |term: &str| {
        let mut query = UserQuery::new(&integ, None);
        query.search = Some(term.to_owned());
        query
    };
    let mut renamed = tricky_people();
    renamed[0].display_name = "Renata Quist".into();
    renamed[0].email = None;
    store
        .users()
        .upsert_from_directory(&integ, &renamed[..1])
        .await
        .unwrap();
    assert!(all_pages(&store, search("ämélie")).await.is_empty());
    let renata = all_pages(&store, search("renata q")).await;
    assert_eq!(renata.len(), 1);
    store.users().delete(&renata[0]).await.unwrap();
    assert!(all_pages(&store, search("renata")).await.is_empty());
    assert_eq!(all_pages(&store, search("straße")).await.len(), 1);
}

crate::store_tests!(
    search_finds_exactly_the_users_holding_the_term,
    search_follows_renames_and_deletes,
);
