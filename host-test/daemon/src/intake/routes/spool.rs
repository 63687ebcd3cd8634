//! `GET /spool[?list=L][&after=CURSOR][&limit=N]`: what the store keeps,
//! a page at a time.

use hyper::StatusCode;
use serde_json::json;

use crate::intake::answer::{answer, refuse, refused_by_store, Answer};
use crate::intake::format::query_options;
use crate::intake::Front;
use crate::store::{Listing, Lists};

/// Entries of each list `GET /spool` shows unless `limit` says otherwise,
/// and the most it shows.
const SPOOL_PAGE: usize = 100;
const SPOOL_PAGE_MAX: usize = 1_000;

/// How many entries each list holds, then a page of each list (or of list
/// `L`), with the cursor of its next page. Read under the store's lock,
/// written after it.
pub(crate) async fn respond(front: &Front, query: &str) -> Answer {
    let (mut list, mut after, mut limit) = (None, None, SPOOL_PAGE);
    for (key, value) in query_options(query) {
        let bad = |what: &str| {
            refuse(
                front,
                StatusCode::BAD_REQUEST,
                &format!(
                    "`{key}` {what}, not `{}`",
                    value.chars().take(40).collect::<String>()
                ),
            )
        };
        match key.as_str() {
            "list" => match Listing::named(&value) {
                Some(named) => list = Some(named),
                None => return bad(&format!("is one of {}", Listing::names(", "))),
            },
            "after" => match value.parse() {
                Ok(cursor) => after = Some(cursor),
                Err(_) => return bad("is a page's `next` cursor (a number)"),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if n > 0 => limit = n.min(SPOOL_PAGE_MAX),
                _ => return bad("is a number of entries (1 to 1000)"),
            },
            _ => {
                return refuse(
                    front,
                    StatusCode::BAD_REQUEST,
                    &format!("GET /spool takes list, after and limit, not `{key}`"),
                )
            }
        }
    }
    if after.is_some() && list.is_none() {
        return refuse(
            front,
            StatusCode::BAD_REQUEST,
            &format!(
                "`after` continues one list: add list={}",
                Listing::names(" or ")
            ),
        );
    }
    let lists: Vec<Listing> = list.map_or(Listing::ALL.to_vec(), |l| vec![l]);
    let listed = front.commit.read(|store| store.lists(&lists, after, limit));
    let Lists { counts, pages } = match listed.await {
        Ok(listed) => listed,
        Err(e) => return refused_by_store(front, &e),
    };
    let mut body = json!({
        "counts": counts
            .into_iter()
            .map(|(l, n)| (l.name().to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "limit": limit,
    });
    for (list, page) in pages {
        body[list.name()] = json!({"items": page.items, "next": page.next});
    }
    answer(StatusCode::OK, body)
}
