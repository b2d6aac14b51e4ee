//! authgate's HTML pages over HTTP: activation and secondary-email links, and the
//! password reset / set forms. The account logic decides; [`crate::pages`] renders.

use crate::accounts::{Accounts, Code, Failure, Purpose};
use crate::pages;
use crate::pages::links::{PASSWORD_RESET, PASSWORD_SET};

use crate::reply::Reply;

fn page(status: u16, html: String) -> Reply {
    Reply::new(status, "text/html; charset=utf-8", html)
        .with_header("x-frame-options", "DENY")
        .with_header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .with_header("referrer-policy", "no-referrer")
}

fn result(status: u16, title: &str, message: &str, ok: bool) -> Reply {
    page(status, pages::result(title, message, ok))
}

/// The page for a failed link, by the failure's code.
fn link_failure(failure: &Failure, what: &str) -> Reply {
    match failure.code() {
        Some(Code::ExpiredToken) => result(
            400,
            "Link expired",
            &format!("This {what} link has expired. Ask for a new one."),
            false,
        ),
        Some(Code::ServiceUnavailable) => result(
            503,
            "Try again shortly",
            "The service is temporarily unavailable.",
            false,
        ),
        _ => result(
            400,
            "Invalid link",
            &format!("This {what} link is not valid (or was already used). Check that you copied it whole."),
            false,
        ),
    }
}

pub async fn activate(accounts: &Accounts, token: &str) -> Reply {
    match accounts.registration.verify_account(token).await {
        Ok(_) => result(
            200,
            "Account verified",
            "Your email address is confirmed. You can close this page and sign in.",
            true,
        ),
        Err(f) if f.is(Code::AlreadyVerified) => result(
            200,
            "Already verified",
            "This account is already verified. You can sign in.",
            true,
        ),
        Err(f) => link_failure(&f, "activation"),
    }
}

pub async fn verify_email(accounts: &Accounts, token: &str) -> Reply {
    match accounts.secondary_email.verify(token).await {
        Ok(()) => result(
            200,
            "Email confirmed",
            "This address is now the secondary email of your account.",
            true,
        ),
        Err(f) if f.is(Code::AlreadyVerified) => result(
            200,
            "Already confirmed",
            "This address is already confirmed.",
            true,
        ),
        Err(f) if f.is(Code::Unique) => result(
            400,
            "Address taken",
            "This address now belongs to another account.",
            false,
        ),
        Err(f) => link_failure(&f, "confirmation"),
    }
}

/// A dialect's confirmation link: an account's activation (or its changed primary email), or
/// else a secondary email, whichever the token was made for.
pub async fn confirm(accounts: &Accounts, token: &str) -> Reply {
    match accounts.registration.verify_account(token).await {
        Err(f) if f.is(Code::InvalidToken) => verify_email(accounts, token).await,
        _ => activate(accounts, token).await,
    }
}

/// The native form's action for `purpose`.
pub fn native_action(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::PasswordSet => PASSWORD_SET,
        _ => PASSWORD_RESET,
    }
}

fn titles(purpose: Purpose) -> (&'static str, &'static str) {
    match purpose {
        Purpose::PasswordSet => ("Choose your password", "Password set"),
        _ => ("Choose a new password", "Password changed"),
    }
}

/// The token of a page's query string (`?token=…`).
pub fn query_token(query: &str) -> String {
    query_param(query, "token")
}

/// The value of parameter `name` in a page's query string (empty when absent).
pub fn query_param(query: &str, name: &str) -> String {
    field(&pages::form_fields(query.as_bytes()), name)
}

/// The token a password form posts back.
pub fn form_token(body: &[u8]) -> String {
    field(&pages::form_fields(body), "token")
}

/// `GET /password/reset?token=…` and `/password/set?token=…` (or a dialect's path for them,
/// `action`): the form, if the link is good.
pub async fn password_form(
    accounts: &Accounts,
    purpose: Purpose,
    token: &str,
    action: &str,
    min_length: usize,
) -> Reply {
    let token = token.to_string();
    match accounts.recovery.password_token_user(&token, purpose).await {
        Ok(user) if purpose == Purpose::PasswordSet && user.password_hash.is_some() => result(
            400,
            "Password already set",
            "This account already has a password. Use “forgot password” to change it.",
            false,
        ),
        Ok(_) => {
            let (title, _) = titles(purpose);
            page(
                200,
                pages::password_form(title, action, &token, &[], min_length),
            )
        }
        Err(f) => link_failure(&f, "password"),
    }
}

/// The form's POST: sets the password, or shows the form again with what is wrong.
pub async fn password_submit(
    accounts: &Accounts,
    purpose: Purpose,
    body: &[u8],
    action: &str,
    min_length: usize,
) -> Reply {
    let fields = pages::form_fields(body);
    let token = field(&fields, "token");
    let (title, done) = titles(purpose);
    match accounts
        .recovery
        .reset_password(
            &token,
            purpose,
            field(&fields, "new_password1"),
            field(&fields, "new_password2"),
        )
        .await
    {
        Ok(()) => result(
            200,
            done,
            "You can now sign in with your new password.",
            true,
        ),
        Err(f)
            if [
                Code::InvalidToken,
                Code::ExpiredToken,
                Code::ServiceUnavailable,
            ]
            .iter()
            .any(|c| f.has(*c)) =>
        {
            link_failure(&f, "password")
        }
        Err(f) if f.is(Code::PasswordAlreadySet) => result(
            400,
            "Password already set",
            "This account already has a password.",
            false,
        ),
        Err(f) => {
            let errors: Vec<String> = f.problems().iter().map(|p| p.message.clone()).collect();
            page(
                400,
                pages::password_form(title, action, &token, &errors, min_length),
            )
        }
    }
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}
