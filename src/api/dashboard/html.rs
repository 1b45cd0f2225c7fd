//! The dashboard's pages, as HTML text: a layout, the sign-in form, the list (with the latest
//! notification problems), one certificate (with its events and their notifications), the
//! confirmation of a destructive action, and an error. Every value from outside is escaped
//! ([`escape`]), receivers' answers among them; no page holds a script or a private key.

use std::fmt::Write as _;

use super::super::inventory::{
    Detail, EventEntry, InventoryPage, Item, NotificationEntry, decode_id,
};
use crate::domain::{DomainName, RevocationReason};
use crate::util::clock;

/// `text` with the five HTML-significant characters escaped: safe in text and in quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who is signed in, for the header: the name, the method, whether admin, and the form token.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub method: &'a str,
    pub admin: bool,
    pub csrf: &'a str,
}

/// A whole page: `title`, the header (with the sign-out button when someone is signed in) and
/// `body`.
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · certfleet</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
         <body><header><a href=\"/ui/certificates\">certfleet</a>",
        escape(title)
    );
    if let Some(viewer) = viewer {
        let _ = write!(
            out,
            "<span class=\"who\">{} ({}{})</span>\
             <form method=\"post\" action=\"/ui/logout\">{}<button type=\"submit\">Sign out</button></form>",
            escape(viewer.name),
            escape(viewer.method),
            if viewer.admin {
                ", admin"
            } else {
                ", read-only"
            },
            csrf_field(viewer.csrf)
        );
    }
    let _ = writeln!(out, "</header><main>{body}</main></body></html>");
    out
}

fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

/// The sign-in form, with `problem` when the last attempt was refused.
pub fn login(problem: Option<&str>) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(problem) = problem {
        let _ = write!(
            body,
            "<div class=\"card problem\" role=\"alert\">{}</div>",
            escape(problem)
        );
    }
    body.push_str(
        "<form class=\"card\" method=\"post\" action=\"/ui/login\">\
         <label for=\"key\">API key or bearer token</label>\
         <p><input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"off\" required></p>\
         <p class=\"muted\">An admin key sees and manages every certificate; any other key sees \
         the certificates its names allow, read-only.</p>\
         <button type=\"submit\">Sign in</button></form>",
    );
    page("Sign in", None, &body)
}

/// The list: the notification problems (`troubled`: the latest events with a notification
/// failing or given up), filters, the table, the next page.
pub fn list(
    viewer: &Viewer<'_>,
    list: &InventoryPage,
    troubled: &[EventEntry],
    name: &str,
    status: &str,
    notice: Option<&str>,
    now: i64,
) -> String {
    let mut body = String::from("<h1>Certificates</h1>");
    notice_card(&mut body, notice);
    notification_problems(&mut body, troubled, now);
    let _ = write!(
        body,
        "<form class=\"card filters\" method=\"get\" action=\"/ui/certificates\">\
         <div><label for=\"name\">Name</label><input type=\"text\" id=\"name\" name=\"name\" \
         value=\"{}\" placeholder=\"*.example.com\"></div>\
         <div><label for=\"status\">Status</label><select id=\"status\" name=\"status\">{}</select></div>\
         <div><button type=\"submit\">Filter</button></div></form>",
        escape(name),
        status_options(status)
    );
    if list.items.is_empty() {
        body.push_str("<div class=\"card\">No certificate matches.</div>");
    } else {
        body.push_str(
            "<div class=\"table\"><table><thead><tr><th>Status</th><th>Names</th>\
             <th class=\"optional\">Key type</th><th>Expires</th><th>Last error</th></tr></thead><tbody>",
        );
        for item in &list.items {
            row(&mut body, item, now);
        }
        body.push_str("</tbody></table></div>");
    }
    if let Some(next) = &list.next {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !name.is_empty() {
            query.append_pair("name", name);
        }
        if !status.is_empty() {
            query.append_pair("status", status);
        }
        query.append_pair("cursor", next);
        let _ = write!(
            body,
            "<p class=\"pager\"><a href=\"/ui/certificates?{}\">Next page</a></p>",
            escape(&query.finish())
        );
    }
    page("Certificates", Some(viewer), &body)
}

fn row(body: &mut String, item: &Item, now: i64) {
    let failing = matches!(item.status, "backing_off" | "expired" | "revoked");
    let expires = item
        .not_after
        .as_deref()
        .and_then(|at| Some((at, clock::parse_rfc3339(at)?)))
        .map_or_else(
            || "<span class=\"muted\">-</span>".to_owned(),
            |(text, at)| {
                format!(
                    "<time datetime=\"{}\" title=\"{}\">{}</time>",
                    escape(text),
                    escape(text),
                    escape(&clock::relative(at, now))
                )
            },
        );
    let error = item.last_error.as_ref().map_or(String::new(), |e| {
        format!("{}: {}", escape(e.code), escape(&e.message))
    });
    let _ = write!(
        body,
        "<tr class=\"{}\"><td><span class=\"status {}\">{}</span></td>\
         <td class=\"names\"><a href=\"/ui/certificates/{}\">{}</a></td>\
         <td class=\"optional\">{}</td><td>{expires}</td><td class=\"error\">{error}</td></tr>",
        if failing { "failing" } else { "" },
        item.status,
        item.status,
        escape(&item.id),
        escape(&item.names.join(", ")),
        item.key.short(),
    );
}

fn status_options(selected: &str) -> String {
    let mut out = String::new();
    for status in [
        "",
        "valid",
        "due",
        "renewing",
        "backing_off",
        "expired",
        "revoked",
    ] {
        let _ = write!(
            out,
            "<option value=\"{status}\"{}>{}</option>",
            if status == selected { " selected" } else { "" },
            if status.is_empty() { "any" } else { status }
        );
    }
    out
}

fn notice_card(body: &mut String, notice: Option<&str>) {
    if let Some(notice) = notice {
        let _ = write!(
            body,
            "<div class=\"card notice\" role=\"status\">{}</div>",
            escape(notice)
        );
    }
}

/// One certificate: its fields, the actions the viewer may take, its history, deliveries and
/// notifications.
pub fn detail(
    viewer: &Viewer<'_>,
    detail: &Detail,
    may_renew: bool,
    notice: Option<&str>,
    now: i64,
) -> String {
    let item = &detail.item;
    let title = item.names.join(", ");
    let mut body = format!("<h1>{}</h1>", escape(&title));
    notice_card(&mut body, notice);
    body.push_str("<div class=\"card\"><dl>");
    let mut field = |label: &str, value: String| {
        let _ = write!(body, "<dt>{label}</dt><dd>{value}</dd>");
    };
    field(
        "Status",
        format!(
            "<span class=\"status {}\">{}</span>",
            item.status, item.status
        ),
    );
    field("Key", escape(&item.key.long()));
    field(
        "Serial",
        item.serial.as_deref().map_or("-".to_owned(), escape),
    );
    for (label, value) in [
        ("Not before", &item.not_before),
        ("Not after", &item.not_after),
        ("Renewal from", &item.renew_after),
        ("Issued", &item.issued_at),
        ("Next attempt", &item.next_attempt),
        ("Revoked", &item.revoked_at),
    ] {
        if let Some(at) = value {
            let relative = clock::parse_rfc3339(at).map_or(String::new(), |t| {
                format!(
                    " <span class=\"muted\">({})</span>",
                    clock::relative(t, now)
                )
            });
            field(label, format!("{}{relative}", escape(at)));
        }
    }
    if let Some(reason) = &item.revocation_reason {
        field("Revocation reason", escape(reason));
    }
    if let Some(error) = &item.last_error {
        field(
            "Last error",
            format!(
                "<span class=\"error\">{}: {}</span> <span class=\"muted\">({} in a row)</span>",
                escape(error.code),
                escape(&error.message),
                error.count
            ),
        );
    }
    field("Id", escape(&item.id));
    body.push_str("</dl></div>");

    let managed = item.status != "deleted";
    if managed && (may_renew || viewer.admin) {
        body.push_str("<h2>Actions</h2><div class=\"card actions\">");
        let action = |name: &str| format!("/ui/certificates/{}/{name}", escape(&item.id));
        if may_renew {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{}\">{}<button type=\"submit\">Renew now</button></form>",
                action("renew"),
                csrf_field(viewer.csrf)
            );
        }
        if viewer.admin && item.revoked_at.is_none() && item.serial.is_some() {
            let mut reasons = String::new();
            for reason in RevocationReason::ALL {
                let _ = write!(
                    reasons,
                    "<option value=\"{0}\">{0}</option>",
                    reason.as_str()
                );
            }
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{}\">{}<div><label for=\"reason\">Reason</label>\
                 <select id=\"reason\" name=\"reason\">{reasons}</select></div>\
                 <button type=\"submit\" class=\"danger\">Revoke…</button></form>",
                action("revoke"),
                csrf_field(viewer.csrf)
            );
        }
        if viewer.admin {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{}\">{}<label><input type=\"checkbox\" \
                 name=\"revoke\" value=\"true\"> revoke it first</label>\
                 <button type=\"submit\" class=\"danger\">Delete…</button></form>",
                action("delete"),
                csrf_field(viewer.csrf)
            );
        }
        body.push_str("</div>");
    }

    body.push_str(
        "<h2>History</h2><div class=\"table\"><table><thead><tr><th>When</th><th>What</th>\
         <th>Outcome</th><th class=\"optional\">Serial</th><th class=\"optional\">Took</th>\
         <th>Details</th></tr></thead><tbody>",
    );
    for entry in &detail.history {
        let outcome = match &entry.error_code {
            Some(code) => format!("<span class=\"error\">{}</span>", escape(code)),
            None => "success".to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{outcome}</td><td class=\"optional\">{}</td>\
             <td class=\"optional\">{} ms</td><td>{}</td></tr>",
            escape(&entry.at),
            escape(&entry.trigger),
            entry.serial.as_deref().map_or("-".to_owned(), escape),
            entry.duration_ms,
            entry.message.as_deref().map_or(String::new(), escape)
        );
    }
    body.push_str("</tbody></table></div>");
    body.push_str(
        "<h2>Who received it</h2><div class=\"table\"><table><thead><tr><th>Credential</th>\
         <th>Serial</th><th>Last received</th></tr></thead><tbody>",
    );
    if detail.deliveries.is_empty() {
        body.push_str("<tr><td colspan=\"3\" class=\"muted\">Nobody yet.</td></tr>");
    }
    for delivery in &detail.deliveries {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&delivery.principal),
            escape(&delivery.serial),
            escape(&delivery.at)
        );
    }
    body.push_str("</tbody></table></div>");
    notifications(&mut body, &detail.events, now);
    page(&title, Some(viewer), &body)
}

/// `at` (RFC 3339) as people say it ("3 minutes ago"), the exact time in the title.
fn when(at: &str, now: i64) -> String {
    let said = clock::parse_rfc3339(at).map_or_else(|| at.to_owned(), |t| clock::relative(t, now));
    format!(
        "<time datetime=\"{0}\" title=\"{0}\">{1}</time>",
        escape(at),
        escape(&said)
    )
}

/// `count` and `noun`, plural unless one.
fn counted(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// Whether a notification needs someone: given up, or failed at least once and retrying.
fn troubled(notification: &NotificationEntry) -> bool {
    notification.state == "failed" || notification.state == "pending" && notification.attempts > 0
}

/// A notification's or an attempt's state as a badge; only known states become a class.
fn state_badge(state: &str) -> String {
    let class = match state {
        "delivered" => "delivered",
        "pending" => "pending",
        _ => "failed",
    };
    let label = if state == "delivered" {
        "delivered ✓".to_owned()
    } else {
        escape(state)
    };
    format!("<span class=\"status {class}\">{label}</span>")
}

/// The list's box of the latest events with a notification failing or given up, each linking to
/// the event on its certificate's page; nothing when there are none.
fn notification_problems(body: &mut String, events: &[EventEntry], now: i64) {
    if events.is_empty() {
        return;
    }
    body.push_str(
        "<section class=\"card problem\"><h2>Notification problems</h2><ul class=\"troubles\">",
    );
    for event in events {
        let names = decode_id(&event.certificate).map(|key| {
            key.names
                .names()
                .iter()
                .map(DomainName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        });
        let certificate = match names {
            Some(names) => format!(
                "<a href=\"/ui/certificates/{}#{}\">{}</a>",
                escape(&event.certificate),
                escape(&event.id),
                escape(&names)
            ),
            None => "<span class=\"muted\">an unknown certificate</span>".to_owned(),
        };
        let _ = write!(
            body,
            "<li><div>{certificate} <span class=\"muted\">{} · {}</span></div>",
            escape(&event.kind),
            when(&event.at, now)
        );
        for notification in event.notifications.iter().filter(|n| troubled(n)) {
            let _ = write!(
                body,
                "<div><strong>{}</strong> {} <span class=\"error\">{}</span></div>",
                escape(&notification.channel),
                state_badge(&notification.state),
                notification
                    .last_error
                    .as_deref()
                    .map_or(String::new(), escape)
            );
        }
        body.push_str("</li>");
    }
    body.push_str("</ul></section>");
}

/// A certificate's events, newest first, each with one row per channel: its state, the last
/// error and every attempt.
fn notifications(body: &mut String, events: &[EventEntry], now: i64) {
    body.push_str("<h2 id=\"notifications\">Notifications</h2>");
    if events.is_empty() {
        body.push_str("<div class=\"card muted\">No events yet.</div>");
        return;
    }
    for event in events {
        let _ = write!(
            body,
            "<div class=\"card event\" id=\"{0}\"><p><strong>{1}</strong> {2} \
             <span class=\"muted\">({3})</span> <code>{0}</code></p>",
            escape(&event.id),
            escape(&event.kind),
            escape(&event.at),
            clock::parse_rfc3339(&event.at).map_or(String::new(), |t| clock::relative(t, now)),
        );
        if event.notifications.is_empty() {
            body.push_str("<p class=\"muted\">Recorded; no channel takes it.</p></div>");
            continue;
        }
        body.push_str(
            "<div class=\"table\"><table><thead><tr><th>Channel</th><th>State</th>\
             <th>Details</th></tr></thead><tbody>",
        );
        for notification in &event.notifications {
            notification_row(body, notification, now);
        }
        body.push_str("</tbody></table></div></div>");
    }
}

/// One channel of an event: its state, the last error and the attempts (folded).
fn notification_row(body: &mut String, notification: &NotificationEntry, now: i64) {
    let attempts = counted(notification.attempts as usize, "attempt");
    let state = match notification.state.as_str() {
        "delivered" => notification
            .done_at
            .as_deref()
            .map_or(String::new(), |at| when(at, now)),
        "pending" => {
            // Not tried yet and due: it waits behind an older event's notification to the same
            // channel, or for the next round.
            let next = notification.next_attempt.as_deref().filter(|at| {
                notification.attempts > 0 || clock::parse_rfc3339(at).is_some_and(|t| t > now)
            });
            let next = next.map_or(String::new(), |at| format!("; next: {}", when(at, now)));
            if notification.attempts == 0 {
                format!("not tried yet{next}")
            } else {
                format!("{attempts}{next}")
            }
        }
        _ => {
            let done = notification
                .done_at
                .as_deref()
                .map_or(String::new(), |at| format!(", {}", when(at, now)));
            format!("given up after {attempts}{done}")
        }
    };
    let mut details = String::new();
    if notification.state != "delivered"
        && let Some(error) = &notification.last_error
    {
        let _ = write!(details, "<div class=\"error\">{}</div>", escape(error));
    }
    if !notification.history.is_empty() {
        let _ = write!(
            details,
            "<details><summary>{}</summary><ol class=\"attempts\">",
            counted(notification.history.len(), "attempt")
        );
        for attempt in &notification.history {
            let _ = write!(
                details,
                "<li><span class=\"muted\">{}</span> {} {} <span class=\"muted\">({} ms)</span></li>",
                escape(&attempt.at),
                state_badge(&attempt.outcome),
                escape(&attempt.message),
                attempt.duration_ms
            );
        }
        details.push_str("</ol></details>");
    }
    let _ = write!(
        body,
        "<tr class=\"{}\"><td>{}</td><td>{} <span class=\"muted\">{state}</span></td>\
         <td>{details}</td></tr>",
        if notification.state == "failed" {
            "failing"
        } else {
            ""
        },
        escape(&notification.channel),
        state_badge(&notification.state),
    );
}

/// The confirmation of a destructive action: what it does, a button that does it (the same
/// form again with `confirm=yes`) and a way back.
pub fn confirm(
    viewer: &Viewer<'_>,
    item: &Item,
    action: &str,
    what: &str,
    fields: &[(&str, &str)],
) -> String {
    let title = item.names.join(", ");
    let mut hidden = csrf_field(viewer.csrf);
    for (name, value) in fields {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let body = format!(
        "<h1>{}</h1><div class=\"card problem\"><p>{}</p><p>This cannot be undone.</p>\
         <form method=\"post\" action=\"/ui/certificates/{id}/{action}\">{hidden}\
         <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button type=\"submit\" class=\"danger\">Yes, {action}</button> \
         <a href=\"/ui/certificates/{id}\">Cancel</a></form></div>",
        escape(&title),
        escape(what),
        id = escape(&item.id),
        action = escape(action),
    );
    page(&format!("{action} {title}"), Some(viewer), &body)
}

/// An error page: what went wrong, and a way back.
pub fn problem(viewer: Option<&Viewer<'_>>, title: &str, message: &str, back: &str) -> String {
    let body = format!(
        "<h1>{}</h1><div class=\"card problem\" role=\"alert\">{}</div><p><a href=\"{}\">Back</a></p>",
        escape(title),
        escape(message),
        escape(back)
    );
    page(title, viewer, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain.example.com"), "plain.example.com");
    }

    /// An event whose one notification to `ops` is in `state`, its receiver having answered
    /// `answer`.
    fn event(state: &str, answer: &str) -> EventEntry {
        use super::super::super::inventory::NotificationAttemptEntry;
        EventEntry {
            id: "evt_1".to_owned(),
            kind: "certificate.issued".to_owned(),
            certificate: "not-an-id".to_owned(),
            at: "2027-01-15T08:00:00Z".to_owned(),
            notifications: vec![NotificationEntry {
                channel: "ops".to_owned(),
                state: state.to_owned(),
                attempts: 1,
                next_attempt: Some("2027-01-15T08:05:00Z".to_owned()),
                last_error: Some(format!("HTTP 500: {answer}")),
                done_at: None,
                history: vec![NotificationAttemptEntry {
                    at: "2027-01-15T08:00:00Z".to_owned(),
                    outcome: "failed".to_owned(),
                    message: format!("HTTP 500: {answer}"),
                    duration_ms: 12,
                }],
            }],
        }
    }

    #[test]
    fn receivers_answers_are_escaped_and_states_are_no_classes() {
        let hostile = "<img src=x onerror=alert(1)>";
        let now = clock::parse_rfc3339("2027-01-15T08:01:00Z").expect("a time");
        let mut body = String::new();
        notifications(&mut body, &[event("\"><b>", hostile)], now);
        notification_problems(&mut body, &[event("failed", hostile)], now);
        assert!(!body.contains("<img") && !body.contains("<b>"), "{body}");
        assert!(
            body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{body}"
        );
        assert!(
            body.contains("class=\"status failed\">&quot;&gt;&lt;b&gt;"),
            "{body}"
        );
        assert!(
            body.contains("Notification problems") && body.contains("given up after 1 attempt")
        );
    }

    #[test]
    fn no_problem_no_box_and_no_event_says_so() {
        let mut body = String::new();
        notification_problems(&mut body, &[], 0);
        assert!(body.is_empty());
        // A channel that took the event is not a problem; an id that names nothing is no link.
        notification_problems(&mut body, &[event("delivered", "ok")], 0);
        assert!(body.contains("an unknown certificate"), "{body}");
        assert!(!body.contains("ops") && !body.contains("<a "), "{body}");
        let mut body = String::new();
        notifications(&mut body, &[], 0);
        assert!(body.contains("No events yet."), "{body}");
    }

    #[test]
    fn the_sign_in_page_escapes_the_problem_and_has_no_script() {
        let html = login(Some("<script>alert(1)</script>"));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("name=\"viewport\""));
    }
}
